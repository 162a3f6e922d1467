// Package hostcap probes, once at start, what this host's kernel and
// picket's own privileges allow: the features themselves where they can be
// tried (a pidfd opened, an openat2 resolved, a sock_diag dump, an nftables
// batch that is never committed), the kernel version only as a hint. Every
// reader or action whose behaviour depends on one asks the Set rather than
// a version number, and a test can switch a feature off (Without,
// WithoutCaps) to run the real path without it.
//
// What a host lacks is said once, at start and by `picket version
// --features`, with what picket does instead (docs/compatibility.md is the
// same table): a missing feature either falls back, or refuses what needs it
// with the reason, never a silent zero.
package hostcap

import (
	"maps"
	"slices"
)

// Name is one probed feature.
type Name string

// The features. Since is the first mainline kernel that has each (a
// distribution's kernel may have backported it: the probe, not the version,
// decides).
const (
	Pidfd           Name = "pidfd"             // pidfd_open + pidfd_send_signal
	Openat2         Name = "openat2"           // openat2 with RESOLVE_BENEATH
	FDCount         Name = "fd_count"          // /proc/PID/fd st_size is the number of open fds
	PSI             Name = "psi"               // /proc/pressure, present and enabled
	MemAvailable    Name = "mem_available"     // MemAvailable in /proc/meminfo
	SockDiagUnix    Name = "sock_diag_unix"    // NETLINK_SOCK_DIAG dumps of unix sockets
	SockDiagInet    Name = "sock_diag_inet"    // NETLINK_SOCK_DIAG dumps of TCP and UDP sockets
	Nftables        Name = "nftables"          // nf_tables reachable over netlink and a table creatable
	CgroupV1        Name = "cgroup_v1"         // a v1 controller hierarchy mounted
	CgroupV2        Name = "cgroup_v2"         // the unified hierarchy mounted
	BTF             Name = "btf"               // /sys/kernel/btf/vmlinux
	BPFIter         Name = "bpf_iter"          // a BPF task_file iterator loads and runs
	Kmsg            Name = "kmsg"              // /dev/kmsg readable
	ProcSysWritable Name = "proc_sys_writable" // /proc/sys mounted read-write and writable by picket
)

// about is what the report says of a feature: the first kernel that has it,
// what picket uses it for, and what it does on a host without it.
type about struct {
	since, uses, without string
}

var catalog = map[Name]about{
	Pidfd: {"5.3", "kill signals through a pidfd opened before the last identity check, so a recycled pid is never hit",
		"kill re-reads /proc/PID/stat (start time, uid, command) immediately before kill(2); a pid that exits and is reused by a new process in the microseconds between that read and the signal could still be hit"},
	Openat2: {"5.6", "archive, sysctl and freeze open paths with openat2(RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS)",
		"paths are opened one component at a time with O_NOFOLLOW from the configured root: symlinks and .. are still refused"},
	FDCount: {"6.2", "light looks count a process's fds with one stat of /proc/PID/fd",
		"light looks count fds by listing /proc/PID/fd (no readlink): a little slower than one stat, still no socket walk"},
	PSI: {"4.20", "memory-thrashing grades on the kernel's pressure stall information",
		"memory-thrashing grades from /proc/vmstat rates alone (swap in and out, major faults, allocation stalls) and says so; rules on psi_* fields skip the look"},
	MemAvailable: {"3.14", "available memory is the kernel's own MemAvailable",
		"available memory is estimated as the kernel's si_mem_available() does (MemFree, page cache and reclaimable slab above the zones' low watermarks) and marked estimated"},
	SockDiagUnix: {"3.3", "unix sockets are dumped over NETLINK_SOCK_DIAG",
		"unix sockets are read from /proc/net/unix (about twice as slow)"},
	SockDiagInet: {"3.3", "TCP and UDP sockets are dumped over NETLINK_SOCK_DIAG",
		"TCP and UDP sockets are read from /proc/net/tcp, tcp6, udp and udp6 (about twice as slow)"},
	Nftables: {"3.13", "throttle drops or rate-limits new connections in picket's own nftables table",
		"throttle is refused, by picket validate and once when picket run starts, with this reason"},
	CgroupV1: {"2.6.24", "freeze and kill scope cgroup use the v1 freezer and pids hierarchies",
		"without any cgroup hierarchy, freeze stops a tree with SIGSTOP and kill scope cgroup is refused"},
	CgroupV2: {"4.5", "freeze and kill scope cgroup use the unified hierarchy (cgroup.freeze since 5.2)",
		"the v1 hierarchies are used where mounted"},
	BTF: {"5.4", "the BPF collector can be compiled once and run on this kernel",
		"the BPF collector stays off: sockets are attributed by the /proc walk"},
	BPFIter: {"5.11", "sockets are attributed by one BPF task_file iterator pass",
		"sockets are attributed by the /proc walk (one readlink per fd)"},
	Kmsg: {"3.5", "kernel log lines (Out of socket memory, fork rejected by pids controller) are read from /dev/kmsg",
		"kernel log lines are not read: doctor works from the counters alone"},
	ProcSysWritable: {"", "sysctl actions write /proc/sys",
		"sysctl actions are refused (a container's /proc/sys is usually mounted read-only)"},
}

// Names lists every feature, in the report's order.
func Names() []Name {
	return []Name{Pidfd, Openat2, FDCount, PSI, MemAvailable, SockDiagUnix, SockDiagInet, Nftables,
		CgroupV1, CgroupV2, BTF, BPFIter, Kmsg, ProcSysWritable}
}

// Since is the first mainline kernel that has n ("" when it is not a
// kernel feature).
func Since(n Name) string { return catalog[n].since }

// Uses says what picket does with n.
func Uses(n Name) string { return catalog[n].uses }

// Fallback says what picket does without n.
func Fallback(n Name) string { return catalog[n].without }

// Feature is what the probe found of one feature.
type Feature struct {
	Name  Name `json:"name"`
	Found bool `json:"found"`
	// Probed is false when the probe did not try: a fixture root (--root)
	// has no syscalls to try, and some features are left to the part of
	// picket that uses them (the BPF collector loads its own program).
	Probed bool `json:"probed"`
	// Detail is what the probe saw: the error, the controllers, the file.
	Detail string `json:"detail,omitempty"`
}

// Set is the result of one probe. Its methods never change it: Without
// and WithoutCaps return copies, so one Set can be shared read-only.
type Set struct {
	// Kernel is the release (uname -r, or the tree's
	// proc/sys/kernel/osrelease): a hint for the report, never a test.
	Kernel string `json:"kernel"`
	// Root is the directory read as "/".
	Root string `json:"root"`
	// Live is set when Root is "/": the syscall probes ran on this kernel.
	Live bool `json:"live"`
	EUID int  `json:"euid"`
	// Caps is picket's effective capability set (CapEff of
	// /proc/self/status).
	Caps Caps `json:"-"`
	// Container is the kind of container picket runs in ("" when none was
	// recognised) and ContainerEvidence what told it.
	Container         string  `json:"container,omitempty"`
	ContainerEvidence string  `json:"container_evidence,omitempty"`
	Cgroups           Cgroups `json:"cgroups"`

	features map[Name]Feature
}

// Has reports whether feature n was found.
func (s *Set) Has(n Name) bool { return s.features[n].Found }

// Feature returns what the probe found of n.
func (s *Set) Feature(n Name) Feature {
	f, ok := s.features[n]
	if !ok {
		return Feature{Name: n}
	}
	return f
}

// Features lists every feature in Names' order.
func (s *Set) Features() []Feature {
	out := make([]Feature, 0, len(s.features))
	for _, n := range Names() {
		out = append(out, s.Feature(n))
	}
	return out
}

// Missing lists the features that were probed and not found.
func (s *Set) Missing() []Feature {
	var out []Feature
	for _, f := range s.Features() {
		if f.Probed && !f.Found {
			out = append(out, f)
		}
	}
	return out
}

// HasCap reports whether picket holds capability c.
func (s *Set) HasCap(c Cap) bool { return s.Caps.Has(c) }

func (s *Set) clone() *Set {
	c := *s
	c.features = maps.Clone(s.features)
	c.Cgroups.V1 = slices.Clone(s.Cgroups.V1)
	c.Cgroups.V2 = slices.Clone(s.Cgroups.V2)
	return &c
}

// Without returns a copy of s with the features named switched off, as a
// host without them would probe: the real fallback paths then run.
func (s *Set) Without(names ...Name) *Set {
	c := s.clone()
	for _, n := range names {
		c.features[n] = Feature{Name: n, Probed: true, Detail: "switched off"}
	}
	return c
}

// WithoutCaps returns a copy of s without the capabilities named.
func (s *Set) WithoutCaps(caps ...Cap) *Set {
	c := s.clone()
	for _, cp := range caps {
		c.Caps &^= 1 << cp
	}
	return c
}

// With returns a copy of s with f recorded: the part of picket that probes
// a feature itself (the BPF collector, bpf_iter) fills its slot.
func (s *Set) With(f Feature) *Set {
	c := s.clone()
	c.features[f.Name] = f
	return c
}

// FeatureMap is found-or-not by name, for /healthz and /metrics.
func (s *Set) FeatureMap() map[string]bool {
	out := make(map[string]bool, len(s.features))
	for n, f := range s.features {
		out[string(n)] = f.Found
	}
	return out
}

// CapMap is held-or-not for every capability picket names (Relevant).
func (s *Set) CapMap() map[string]bool {
	out := map[string]bool{}
	for _, c := range Relevant() {
		out[c.String()] = s.HasCap(c)
	}
	return out
}
