package hostcap

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// Options configure a probe.
type Options struct {
	// Root is the directory read as "/" (default "/"). With another root
	// only the files are probed (PSI, MemAvailable, cgroups, BTF, the
	// container's marks); what needs a syscall on this kernel is left
	// unprobed, since the tree is not this kernel's.
	Root string
	// NetNS is the network namespace file throttles act in ("" for
	// picket's own): nftables is probed there.
	NetNS string
}

// Probe finds what the host at opts.Root offers. It never fails: what it
// cannot tell is a feature not found, with the reason in its Detail. It
// changes nothing on the host (the nftables batch is aborted, never
// committed) and takes a few milliseconds.
func Probe(opts Options) *Set {
	root := opts.Root
	if root == "" {
		root = "/"
	}
	if abs, err := filepath.Abs(root); err == nil {
		root = abs
	}
	s := &Set{Root: root, Live: root == "/", EUID: os.Geteuid(), features: map[Name]Feature{}}
	s.Kernel = kernelRelease(root, s.Live)
	// Capabilities are picket's own, whatever tree it reads.
	if caps, err := readCapEff("/proc/self/status"); err == nil {
		s.Caps = caps
	}

	s.set(probePSI(root))
	s.set(probeMemAvailable(root))
	s.Cgroups = probeCgroups(root)
	s.set(s.Cgroups.feature(CgroupV1))
	s.set(s.Cgroups.feature(CgroupV2))
	s.set(fileFeature(BTF, filepath.Join(root, "sys/kernel/btf/vmlinux")))
	s.Container, s.ContainerEvidence = detectContainer(root)
	s.set(Feature{Name: BPFIter, Detail: "probed by the BPF collector when it loads its iterator"})

	if !s.Live {
		for _, n := range []Name{Pidfd, Openat2, FDCount, SockDiagUnix, SockDiagInet, Nftables, Kmsg, ProcSysWritable} {
			s.set(Feature{Name: n, Detail: "not probed: " + root + " is a fixture tree, not this kernel"})
		}
		return s
	}
	s.set(probePidfd())
	s.set(probeOpenat2())
	s.set(ProbeFDCount())
	s.set(probeSockDiag(SockDiagUnix))
	s.set(probeSockDiag(SockDiagInet))
	s.set(probeNftables(opts.NetNS))
	s.set(probeKmsg())
	s.set(probeProcSys())
	return s
}

func (s *Set) set(f Feature) { s.features[f.Name] = f }

func found(n Name, detail string) Feature {
	return Feature{Name: n, Found: true, Probed: true, Detail: detail}
}
func missing(n Name, detail string) Feature {
	return Feature{Name: n, Probed: true, Detail: detail}
}

// kernelRelease is uname -r on a live host, the tree's osrelease elsewhere.
func kernelRelease(root string, live bool) string {
	if b, err := os.ReadFile(filepath.Join(root, "proc/sys/kernel/osrelease")); err == nil {
		return strings.TrimSpace(string(b))
	}
	if live {
		var u unix.Utsname
		if unix.Uname(&u) == nil {
			return unix.ByteSliceToString(u.Release[:])
		}
	}
	return "unknown"
}

func fileFeature(n Name, path string) Feature {
	if _, err := os.Stat(path); err != nil {
		return missing(n, "no "+path)
	}
	return found(n, path)
}

// probePSI opens and reads /proc/pressure/memory: absent before 4.20 or
// without CONFIG_PSI; present but refusing reads (EOPNOTSUPP) when the
// kernel was built with CONFIG_PSI_DEFAULT_DISABLED or booted with psi=0.
func probePSI(root string) Feature {
	path := filepath.Join(root, "proc/pressure/memory")
	f, err := os.Open(path)
	if err == nil {
		var b [256]byte
		_, err = f.Read(b[:])
		f.Close()
		if err == io.EOF {
			err = nil
		}
	}
	switch {
	case err == nil:
		return found(PSI, path)
	case errors.Is(err, unix.EOPNOTSUPP):
		return missing(PSI, path+" is present but disabled (psi=0 on the kernel command line, or CONFIG_PSI_DEFAULT_DISABLED): boot with psi=1 to enable it")
	case errors.Is(err, os.ErrNotExist):
		return missing(PSI, "no "+path+" (a kernel before 4.20, or built without CONFIG_PSI)")
	}
	return missing(PSI, err.Error())
}

func probeMemAvailable(root string) Feature {
	path := filepath.Join(root, "proc/meminfo")
	b, err := os.ReadFile(path)
	if err != nil {
		return missing(MemAvailable, err.Error())
	}
	if bytes.Contains(b, []byte("\nMemAvailable:")) {
		return found(MemAvailable, path)
	}
	return missing(MemAvailable, path+" has no MemAvailable line (a kernel before 3.14)")
}

// probePidfd opens a pidfd of picket itself and sends it signal 0 through
// it: both calls must exist (pidfd_send_signal 5.1, pidfd_open 5.3) and
// not be refused by a seccomp filter.
func probePidfd() Feature {
	fd, err := unix.PidfdOpen(os.Getpid(), 0)
	if err != nil {
		return missing(Pidfd, "pidfd_open: "+syscallError(err))
	}
	defer unix.Close(fd)
	if err := unix.PidfdSendSignal(fd, 0, nil, 0); err != nil {
		return missing(Pidfd, "pidfd_send_signal: "+syscallError(err))
	}
	return found(Pidfd, "pidfd_open and pidfd_send_signal")
}

// probeOpenat2 resolves "." beneath "/" with the flags the actions use.
func probeOpenat2() Feature {
	dir, err := unix.Open("/", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return missing(Openat2, "open /: "+err.Error())
	}
	defer unix.Close(dir)
	fd, err := unix.Openat2(dir, ".", &unix.OpenHow{Flags: unix.O_PATH | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS})
	if err != nil {
		return missing(Openat2, "openat2: "+syscallError(err))
	}
	unix.Close(fd)
	return found(Openat2, "openat2 with RESOLVE_BENEATH")
}

// ProbeFDCount reports whether stat of /proc/PID/fd gives the number of
// open fds (proc_fd_getattr, Linux 6.2). picket holds at least the
// probe's own fd open, so 0 means the kernel does not count. It is
// exported for the collector, which needs only this answer when no Set was
// handed to it.
func ProbeFDCount() Feature {
	var st unix.Stat_t
	if err := unix.Stat("/proc/self/fd", &st); err != nil {
		return missing(FDCount, "stat /proc/self/fd: "+err.Error())
	}
	if st.Size <= 0 {
		return missing(FDCount, "stat of /proc/self/fd gives size 0 (a kernel before 6.2)")
	}
	return found(FDCount, fmt.Sprintf("stat of /proc/self/fd gives %d open fds", st.Size))
}

// probeKmsg opens /dev/kmsg for reading, as the kernel-log reader would.
func probeKmsg() Feature {
	fd, err := unix.Open("/dev/kmsg", unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		why := err.Error()
		if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) {
			why += " (kernel.dmesg_restrict=1 needs CAP_SYSLOG, or a container hides it)"
		}
		return missing(Kmsg, "open /dev/kmsg: "+why)
	}
	unix.Close(fd)
	return found(Kmsg, "/dev/kmsg")
}

// probeProcSys asks whether picket may write a sysctl, without writing
// one: /proc/sys must not be mounted read-only (containers) and a file
// there must be writable by picket's effective ids.
func probeProcSys() Feature {
	var fs unix.Statfs_t
	if err := unix.Statfs("/proc/sys", &fs); err != nil {
		return missing(ProcSysWritable, "statfs /proc/sys: "+err.Error())
	}
	if fs.Flags&unix.ST_RDONLY != 0 {
		return missing(ProcSysWritable, "/proc/sys is mounted read-only")
	}
	const probe = "/proc/sys/kernel/threads-max"
	if err := unix.Faccessat(unix.AT_FDCWD, probe, unix.W_OK, unix.AT_EACCESS); err != nil {
		return missing(ProcSysWritable, probe+" is not writable: "+err.Error())
	}
	return found(ProcSysWritable, "/proc/sys is mounted read-write")
}

// syscallError names ENOSYS and EPERM for what they mean here.
func syscallError(err error) string {
	switch {
	case errors.Is(err, unix.ENOSYS):
		return err.Error() + " (the kernel does not have it)"
	case errors.Is(err, unix.EPERM):
		return err.Error() + " (refused, usually by a seccomp filter: a container runtime's default profile)"
	}
	return err.Error()
}
