package collect

import (
	"errors"
	"fmt"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/picket-guard/picket/internal/cgroup"
	"github.com/picket-guard/picket/internal/procid"
	"github.com/picket-guard/picket/internal/sockiter"
)

// procInfo is one process as the walk read it: its identity and size from
// stat (parsed by procid, the reader the action runner uses too), its
// owner, and where its socket fds are.
type procInfo struct {
	pid, ppid int
	uid       uint32 // effective: the owner ps shows
	// ruid is the real uid, which RLIMIT_NPROC counts by. Read from status
	// where status is read (root-owned /proc/PID); elsewhere the owner:
	// commit_creds (kernel/cred.c) makes a process whose euid changes
	// non-dumpable, and the kernel gives a non-dumpable process's
	// /proc/PID to root (task_dump_owner), so a real uid that differs from
	// a non-root owner takes a setreuid that keeps euid, which is rare.
	ruid        uint32
	comm        string
	state       byte
	kthread     bool
	startTicks  uint64 // stat's starttime
	threads     int
	rssPages    int64
	fds         int // -1: unreadable
	netns       uint64
	worker      int // whose socks the window below is in
	inoLo, inoN int // window into procWorker.socks, or the BPF pass's list (bpfSocks)
	bpfSocks    bool
	// counted is the sockets the fd walk counted rather than listed
	// (sockiter.Iter.CountHashed): hashed in picket's own namespace's
	// tables, of kinds their dumps count.
	counted sockiter.Counts
	// cgroup is the process's cgroup path (cgroup.Pick's primary), and
	// cgOthers the v1 paths it is in besides (a pids cgroup apart from its
	// memory one); interned per worker.
	cgroup   string
	cgOthers [2]string
}

// sockets is how many socket fds the scan found p to hold.
func (p *procInfo) sockets() int {
	return p.inoN + int(p.counted.TCP+p.counted.UDP+p.counted.Unix)
}

// errVanished marks a process that exited while it was being read: normal,
// skipped silently.
var errVanished = errors.New("process vanished")

// readProc reads one process. Files that vanish (ENOENT, ESRCH) mean the
// process exited: errVanished.
// A light read (live only) takes the fd count from one stat of fd/ instead
// of walking it.
func (w *procWorker) readProc(procfd, pid int, light bool) (procInfo, error) {
	c := w.s.c
	// With the BPF iterator's sockets at hand, fd/ is only counted, as a
	// light look does.
	countOnly := light || (w.s.bpfRun && !w.s.bpfMissed(pid))
	p := procInfo{pid: pid}
	base := len(strconv.AppendInt(w.path[:0], int64(pid), 10))
	w.path = append(w.path[:base], "/stat\x00"...)
	n, err := readAt(procfd, w.path, w.buf)
	if err != nil {
		return p, vanished(err, c.proc, pid, "stat")
	}
	var stat procid.Stat
	if err := procid.ParseStat(w.buf[:n], &stat); err != nil {
		return p, fmt.Errorf("%s: %w", filepath.Join(c.proc, strconv.Itoa(pid), "stat"), err)
	}
	p.ppid, p.comm, p.state, p.kthread = stat.PPID, string(stat.Comm), stat.State, stat.KernelThread()
	p.startTicks, p.threads = stat.Starttime, stat.NumThreads
	if stat.RSS > 0 { // signed in the kernel's output
		p.rssPages = stat.RSS
	}
	switch {
	case !c.cgroupsMounted:
	case p.kthread:
		p.cgroup = "/"
	case light:
		// A process's cgroup is set when it starts (systemd moves it into
		// its scope right after fork) and rarely changes after: a light
		// look takes it from the previous look when the process is the
		// same, and full looks read every process again.
		if seen, ok := w.s.cgSeen[pid]; ok && seen.start == p.startTicks {
			p.cgroup, p.cgOthers = seen.cgroup, seen.others
			break
		}
		fallthrough
	default:
		w.readCgroup(procfd, base, &p)
	}
	if !c.live {
		// In a fixture tree ownership means nothing: status says the uid,
		// and fd/ is listed as a plain directory.
		if err := w.readStatusUID(procfd, base, &p); err != nil {
			return p, err
		}
		p.inoLo = len(w.socks)
		w.path = append(w.path[:base], "/fd\x00"...)
		p.fds = w.readFDs(procfd, w.path)
		p.inoN = len(w.socks) - p.inoLo
		return p, nil
	}
	// The owner of /proc/PID (and of every file in it) is the process's
	// effective uid, except for non-dumpable processes (those that changed
	// uid, such as an imapd that dropped root), whose /proc/PID the kernel
	// gives to root (task_dump_owner). So a non-root owner is trusted and a
	// root one is confirmed from status. fstat of fd/, which is opened
	// anyway, is the cheapest way to ask.
	//
	// A kernel thread has no files: its fd/ is empty, so root need not open
	// it (on a big host there are hundreds of them); it is root's. Without
	// root it is unreadable and still tried, so that it is counted as such.
	if w.s.root && p.kthread {
		return p, w.readStatusUID(procfd, base, &p)
	}
	w.path = append(w.path[:base], "/fd\x00"...)
	if countOnly && c.fdCount {
		// One stat of fd/ tells the owner and, since Linux 6.2, how many
		// fds are open (proc_fd_getattr puts the count in st_size): no
		// walk, no readlink. The probe found the kernel counting, so 0 is
		// no fds (a zombie's).
		var st unix.Stat_t
		if err := unix.Fstatat(procfd, string(w.path[:len(w.path)-1]), &st, 0); err != nil {
			w.path = append(w.path[:base], 0)
			if err := unix.Fstatat(procfd, string(w.path[:base]), &st, 0); err != nil {
				return p, vanished(err, c.proc, pid, "")
			}
			p.fds = -1
		} else {
			p.fds = int(st.Size)
		}
		p.uid, p.ruid = st.Uid, st.Uid
		if p.uid == 0 {
			return p, w.readStatusUID(procfd, base, &p)
		}
		return p, nil
	}
	dfd, err := openat(procfd, w.path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC)
	var st unix.Stat_t
	if err != nil {
		// fd/ unreadable (another user's process, picket not root): the
		// owner from /proc/PID itself.
		p.fds = -1
		w.path = append(w.path[:base], 0)
		if err := unix.Fstatat(procfd, string(w.path[:base]), &st, 0); err != nil {
			return p, vanished(err, c.proc, pid, "")
		}
	} else {
		err = unix.Fstat(dfd, &st)
		switch {
		case err == nil && countOnly:
			// A kernel before 6.2 does not count fds in st_size: the
			// entries of fd/ are counted instead, without a readlink each.
			p.fds = countDirents(dfd, w.dirbuf)
		case err == nil:
			p.inoLo = len(w.socks)
			p.fds = w.listFDs(dfd, st.Size)
			p.inoN = len(w.socks) - p.inoLo
		}
		unix.Close(dfd)
		if err != nil {
			return p, vanished(err, c.proc, pid, "fd")
		}
	}
	p.uid, p.ruid = st.Uid, st.Uid
	if p.uid == 0 {
		return p, w.readStatusUID(procfd, base, &p)
	}
	return p, nil
}

// readCgroup sets p's cgroup paths from PID/cgroup, one read into the
// worker's buffer, parsed in place (cgroup.EachLine and Pick allocate
// nothing) and interned: a host's thousands of processes live in a few
// hundred cgroups at most. A kernel thread lives in the root cgroup and is
// not asked. An unreadable file leaves the paths empty: the process is
// still there.
func (w *procWorker) readCgroup(procfd, base int, p *procInfo) {
	w.path = append(w.path[:base], "/cgroup\x00"...)
	n, err := readAt(procfd, w.path, w.buf)
	if err != nil {
		return
	}
	var pick cgroup.Pick
	cgroup.EachLine(w.buf[:n], pick.Line)
	w.setCgroup(&pick, p)
}

// setCgroup sets p's cgroup paths from the lines pick took.
func (w *procWorker) setCgroup(pick *cgroup.Pick, p *procInfo) {
	p.cgroup = w.intern(pick.Primary())
	i := 0
	pick.EachOther(func(path []byte) {
		if i < len(p.cgOthers) {
			p.cgOthers[i] = w.intern(path)
			i++
		}
	})
}

// maxInterned bounds a worker's table of cgroup paths: past it (cgroups
// created and removed by the thousand), it starts afresh.
const maxInterned = 1 << 14

// intern returns the string of b, allocating it only the first time.
func (w *procWorker) intern(b []byte) string {
	if s, ok := w.cgPaths[string(b)]; ok {
		return s
	}
	if len(w.cgPaths) >= maxInterned {
		clear(w.cgPaths)
	}
	s := string(b)
	w.cgPaths[s] = s
	return s
}

// readStatusUID sets p.uid from PID/status (base is the length of "PID" in
// w.path).
func (w *procWorker) readStatusUID(procfd, base int, p *procInfo) error {
	w.path = append(w.path[:base], "/status\x00"...)
	n, err := readAt(procfd, w.path, w.buf)
	if err != nil {
		return vanished(err, w.s.c.proc, p.pid, "status")
	}
	ruid, uid, err := procid.ParseStatusUIDs(w.buf[:n])
	if err != nil {
		return fmt.Errorf("%s: %w", filepath.Join(w.s.c.proc, strconv.Itoa(p.pid), "status"), err)
	}
	p.uid, p.ruid = uid, ruid
	return nil
}

func vanished(err error, proc string, pid int, file string) error {
	if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ESRCH) {
		return errVanished
	}
	return fmt.Errorf("read %s: %w", filepath.Join(proc, strconv.Itoa(pid), file), err)
}
