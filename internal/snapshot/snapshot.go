// Package snapshot defines what one collection saw: the Snapshot type and its
// JSON contract. Other tools script against these names; add fields
// freely, never rename or remove one.
package snapshot

import "time"

// Snapshot is one complete look at the host.
type Snapshot struct {
	Time         time.Time     `json:"time"`
	Host         string        `json:"host"`
	Root         string        `json:"root,omitempty"` // set when collected from a fixture tree (--root)
	Processes    Processes     `json:"processes"`
	Sockets      Sockets       `json:"sockets"`
	Kernel       Kernel        `json:"kernel"`
	Memory       Memory        `json:"memory"`
	Beancounters []Beancounter `json:"beancounters"`
	// Cgroups is every control group read (bounded: CgroupLayout.Skipped
	// says how many were left out), the root first, breadth first.
	Cgroups      []Cgroup      `json:"cgroups"`
	CgroupLayout *CgroupLayout `json:"cgroup_layout,omitempty"`
	// KernelLog is what the kernel said in /dev/kmsg; nil where there is
	// none to read (a fixture tree without dev/kmsg).
	KernelLog *KernelLog `json:"kernel_log,omitempty"`
	// Forecasts are the limits heading for exhaustion at their current
	// trend (picket run only: one look has no trend), soonest first.
	Forecasts []Forecast `json:"forecasts,omitempty"`
	// Errors lists sources that could not be read (missing files are not
	// errors; a malformed file or a permission problem is). The snapshot is
	// still usable: only the named part is empty.
	Errors []string `json:"errors,omitempty"`
	// Duration is how long the collection took, for the operator's eyes.
	DurationSeconds float64 `json:"duration_seconds"`
	// Light is set on a light collection (collect.Light): socket
	// attribution was skipped, so Sockets is empty, not zero — or, from
	// picket run, carried over from its last full look.
	Light bool `json:"light,omitempty"`
	// Collector is how a full look of the live host attributed sockets to
	// processes: CollectorBPF (one pass of a BPF task_file iterator) or
	// CollectorProc (a readlink of every /proc/PID/fd entry), with
	// CollectorReason saying why the /proc walk ran where the iterator
	// could not. Empty on light looks and fixture trees.
	Collector       string `json:"collector,omitempty"`
	CollectorReason string `json:"collector_reason,omitempty"`
	// ProcessCollector is how the same look read each process's identity
	// (pid, parent, name, owner, start time, threads, state, rss,
	// cgroup): CollectorBPF (one pass of a BPF task iterator) or
	// CollectorProc (its /proc/PID/stat, status and cgroup), with
	// ProcessCollectorReason saying why /proc was read instead.
	ProcessCollector       string `json:"process_collector,omitempty"`
	ProcessCollectorReason string `json:"process_collector_reason,omitempty"`
	// BPFPrograms says, where the BPF iterators ran, how this process had
	// them: "loaded", "loaded and pinned (DIR)", or "opened from its pin
	// (DIR)" (loaded by an earlier process, one bpf(2) call), and why a
	// program loaded was not pinned.
	BPFPrograms string `json:"bpf_programs,omitempty"`
	// Selection is set on an API answer narrowed by top or a filter.
	Selection *Selection `json:"selection,omitempty"`
}

// The values of Snapshot.Collector.
const (
	CollectorBPF  = "bpf"
	CollectorProc = "proc"
)

// Processes is every process (thread group) on the host, and the same
// grouped by user × command: PIKT's `ps -eo user,comm | sort | uniq -c`.
type Processes struct {
	Total   int     `json:"total"`
	Threads int     `json:"threads"`
	Groups  []Group `json:"groups"`
	// Users is per-user totals with the user's RLIMIT_NPROC (read from one of
	// its processes), heaviest first.
	Users []User `json:"users"`
	// List is every process. It is large; it is included so rules and
	// actions can see pids, parents and start times.
	List []Process `json:"list"`
	// Units is the processes grouped by systemd unit, heaviest first
	// (empty where no path names a unit).
	Units []UnitGroup `json:"units"`
	// FDUnreadable counts processes whose /proc/PID/fd could not be read
	// (not root and not the owner): their sockets are not attributed.
	FDUnreadable int `json:"fd_unreadable"`
}

// Group is one user × command pair.
type Group struct {
	User     string `json:"user"`
	UID      uint32 `json:"uid"`
	Comm     string `json:"comm"`
	Count    int    `json:"count"`
	Threads  int    `json:"threads"`
	RSSBytes uint64 `json:"rss_bytes"`
	// KernelThread is set when every process of the group is a kernel
	// thread (PF_KTHREAD): `picket top` and the dashboard hide such groups
	// of one process (cpuhp/0, kauditd, kworker/…), as htop hides kernel
	// threads, unless asked to show them.
	KernelThread bool `json:"kernel_thread,omitempty"`
}

// User is the per-user total, for RLIMIT_NPROC (which counts a real user's
// threads, not one command's).
type User struct {
	User    string `json:"user"`
	UID     uint32 `json:"uid"`
	Count   int    `json:"count"`
	Threads int    `json:"threads"`
	// NprocLimit is the soft RLIMIT_NPROC of one of the user's processes;
	// 0 when not read, -1 when unlimited.
	NprocLimit int64 `json:"nproc_limit"`
}

// Process is one thread group as /proc/PID/stat and status show it.
type Process struct {
	PID          int       `json:"pid"`
	PPID         int       `json:"ppid"`
	User         string    `json:"user"`
	UID          uint32    `json:"uid"`
	Comm         string    `json:"comm"`
	State        string    `json:"state"`
	StartTime    time.Time `json:"start_time"`
	Threads      int       `json:"threads"`
	RSSBytes     uint64    `json:"rss_bytes"`
	KernelThread bool      `json:"kernel_thread,omitempty"`
	FDLimit      int64     `json:"fd_limit,omitempty"` // soft RLIMIT_NOFILE, read for heavy fd holders only
	FDs          int       `json:"fds"`                // -1 when /proc/PID/fd was unreadable
	// Cgroup is the process's cgroup path (the unified hierarchy's, else
	// systemd's name=systemd, else its v1 pids or memory cgroup), Unit the
	// systemd unit that path names, Container the container it is in.
	// Absent where /proc/PID/cgroup was not read (no cgroups mounted).
	Cgroup    string     `json:"cgroup,omitempty"`
	Unit      string     `json:"unit,omitempty"`
	Container *Container `json:"container,omitempty"`
}

// Sockets are counted two ways: from the kernel's tables (/proc/net/*, one
// set per network namespace seen), and per owning process from /proc/PID/fd.
type Sockets struct {
	Totals    SocketCounts   `json:"totals"`
	TCPStates map[string]int `json:"tcp_states"`
	// Namespaces is how many network namespaces contributed to Totals.
	Namespaces int `json:"namespaces"`
	// Processes is every process holding at least one socket, heaviest first.
	Processes []Holder `json:"processes"`
}

// SocketCounts counts sockets by type; IPv4 and IPv6 together.
type SocketCounts struct {
	TCP     int `json:"tcp"`
	UDP     int `json:"udp"`
	Unix    int `json:"unix"`
	Raw     int `json:"raw"`
	Netlink int `json:"netlink"`
	Packet  int `json:"packet"`
	Other   int `json:"other"`
}

// NonTCP is what OpenVZ's numothersock counts: every socket that is not TCP.
func (c SocketCounts) NonTCP() int {
	return c.UDP + c.Unix + c.Raw + c.Netlink + c.Packet + c.Other
}

// Sum is all sockets.
func (c SocketCounts) Sum() int { return c.TCP + c.NonTCP() }

// Holder is a process holding sockets. A socket held by several processes
// (after fork, or passed over a unix socket) counts for each holder.
type Holder struct {
	PID  int    `json:"pid"`
	User string `json:"user"`
	UID  uint32 `json:"uid"`
	Comm string `json:"comm"`
	SocketCounts
	Total int `json:"total"`
	FDs   int `json:"fds"`
	// FDLimit is the soft RLIMIT_NOFILE from /proc/PID/limits, read for the
	// heaviest holders only; 0 when not read.
	FDLimit int64 `json:"fd_limit"`
}

// Kernel is the kernel's own accounting and limits, side by side.
type Kernel struct {
	Sockstat  *Sockstat  `json:"sockstat,omitempty"`
	Sockstat6 *Sockstat6 `json:"sockstat6,omitempty"`
	// TCPMemPages is net.ipv4.tcp_mem: low, pressure, high, in pages.
	TCPMemPages   []int64 `json:"tcp_mem_pages,omitempty"`
	TCPMaxOrphans int64   `json:"tcp_max_orphans,omitempty"`
	FileNr        *FileNr `json:"file_nr,omitempty"`
	NrOpen        int64   `json:"nr_open,omitempty"`
	PidMax        int64   `json:"pid_max,omitempty"`
	ThreadsMax    int64   `json:"threads_max,omitempty"`
	// Conntrack is nil when nf_conntrack is not loaded.
	Conntrack *Conntrack `json:"conntrack,omitempty"`
	PageSize  int        `json:"page_size"`
	// Netstat is nil when /proc/net/netstat was not read.
	Netstat *Netstat `json:"netstat,omitempty"`
	// ConntrackStat is nil when nf_conntrack is not loaded.
	ConntrackStat *ConntrackStat `json:"conntrack_stat,omitempty"`
}

// Sockstat is /proc/net/sockstat (IPv4, plus the global "sockets: used").
type Sockstat struct {
	SocketsUsed int         `json:"sockets_used"`
	TCP         SockstatTCP `json:"tcp"`
	UDP         SockstatUDP `json:"udp"`
	UDPLite     int         `json:"udplite_inuse"`
	RawInuse    int         `json:"raw_inuse"`
	FragInuse   int         `json:"frag_inuse"`
	FragMemory  int         `json:"frag_memory"`
}

// SockstatTCP is the TCP line of sockstat. Orphan and MemPages are the two
// numbers tcp_too_many_orphans() and tcp_mem compare against ("Out of socket memory").
type SockstatTCP struct {
	Inuse    int `json:"inuse"`
	Orphan   int `json:"orphan"`
	TW       int `json:"tw"`
	Alloc    int `json:"alloc"`
	MemPages int `json:"mem_pages"` // "mem": pages, not bytes
	// NoMem is set when the TCP line has no "mem" field (a sockstat
	// printed without it): MemPages is then not a value.
	NoMem bool `json:"no_mem,omitempty"`
}

// SockstatUDP is the UDP line of sockstat.
type SockstatUDP struct {
	Inuse    int `json:"inuse"`
	MemPages int `json:"mem_pages"`
}

// Sockstat6 is /proc/net/sockstat6: IPv6 in-use counts.
type Sockstat6 struct {
	TCP6     int `json:"tcp6_inuse"`
	UDP6     int `json:"udp6_inuse"`
	UDPLite6 int `json:"udplite6_inuse"`
	Raw6     int `json:"raw6_inuse"`
	Frag6    int `json:"frag6_inuse"`
}

// FileNr is /proc/sys/fs/file-nr: allocated file handles against fs.file-max.
type FileNr struct {
	Allocated int64 `json:"allocated"`
	Unused    int64 `json:"unused"`
	Max       int64 `json:"max"`
}

// Conntrack is the netfilter connection table against its limit.
type Conntrack struct {
	Count int64 `json:"count"`
	Max   int64 `json:"max"`
}

// Memory is what matters of /proc/meminfo, /proc/vmstat and PSI.
type Memory struct {
	MemTotalBytes     uint64 `json:"mem_total_bytes"`
	MemFreeBytes      uint64 `json:"mem_free_bytes"`
	MemAvailableBytes uint64 `json:"mem_available_bytes"`
	// MemAvailableSource says where MemAvailableBytes comes from: "" is the
	// kernel's own MemAvailable (3.14+); on older kernels it is estimated
	// (MemAvailableZoneinfo, MemAvailableMinFree) or unknown
	// (MemAvailableUnknown, and MemAvailableBytes is then 0: not a value).
	MemAvailableSource string `json:"mem_available_source,omitempty"`
	BuffersBytes       uint64 `json:"buffers_bytes"`
	CachedBytes        uint64 `json:"cached_bytes"`
	SwapTotalBytes     uint64 `json:"swap_total_bytes"`
	SwapFreeBytes      uint64 `json:"swap_free_bytes"`
	CommittedASBytes   uint64 `json:"committed_as_bytes"`
	CommitLimitBytes   uint64 `json:"commit_limit_bytes"`
	// VMStat holds cumulative counters from /proc/vmstat: pswpin, pswpout,
	// pgmajfault, oom_kill. Rates need two snapshots.
	VMStat map[string]uint64 `json:"vmstat,omitempty"`
	// PSI is keyed by resource: memory, cpu, io. Absent without
	// CONFIG_PSI or with psi=0.
	PSI map[string]PSI `json:"psi,omitempty"`
}

// Where Memory.MemAvailableBytes comes from on a kernel without
// MemAvailable (before 3.14).
const (
	// MemAvailableZoneinfo: estimated as the kernel's si_mem_available()
	// does, with the zones' low watermarks from /proc/zoneinfo.
	MemAvailableZoneinfo = "estimated from zoneinfo"
	// MemAvailableMinFree: the same with the low watermark taken as
	// vm.min_free_kbytes × 5/4, as procps's free does without zoneinfo.
	MemAvailableMinFree = "estimated from min_free_kbytes"
	// MemAvailableUnknown: meminfo lacks even the file LRU lists (before
	// 2.6.28): nothing is available to say.
	MemAvailableUnknown = "unknown"
)

// PSI is one /proc/pressure/RESOURCE file. Full is absent for cpu on older
// kernels.
type PSI struct {
	SomeAvg10  float64 `json:"some_avg10"`
	SomeAvg60  float64 `json:"some_avg60"`
	SomeAvg300 float64 `json:"some_avg300"`
	SomeTotal  uint64  `json:"some_total_us"`
	FullAvg10  float64 `json:"full_avg10"`
	FullAvg60  float64 `json:"full_avg60"`
	FullAvg300 float64 `json:"full_avg300"`
	FullTotal  uint64  `json:"full_total_us"`
	HasFull    bool    `json:"has_full"`
}

// Beancounter is one resource row of OpenVZ's /proc/user_beancounters.
type Beancounter struct {
	UID      string `json:"uid"` // the container id (veid), as the file names it
	Resource string `json:"resource"`
	Held     uint64 `json:"held"`
	MaxHeld  uint64 `json:"maxheld"`
	Barrier  uint64 `json:"barrier"`
	Limit    uint64 `json:"limit"`
	Failcnt  uint64 `json:"failcnt"`
}
