package forecast

import (
	"strconv"
	"time"

	"github.com/picket-guard/picket/internal/snapshot"
)

// A Limit is one used/limit pair of a snapshot: Forecast carries its name
// and labels, Key tells it from every other across looks.
type Limit struct {
	Key      string
	Used     float64
	Max      float64
	Forecast snapshot.Forecast
	// Start is the process's start time (RLIMIT_NOFILE only), which
	// names its history series.
	Start time.Time
}

// The limits' names, in the kernel's words (snapshot.Forecast.Limit).
const (
	PidMax         = "pid_max"
	ThreadsMax     = "threads-max"
	FileMax        = "file-max"
	TCPMaxOrphans  = "tcp_max_orphans"
	TCPMem         = "tcp_mem"
	NfConntrackMax = "nf_conntrack_max"
	Beancounter    = "beancounter"
	PidsMax        = "pids.max"
	MemoryMax      = "memory.max"
	RlimitNofile   = "RLIMIT_NOFILE"
	RlimitNproc    = "RLIMIT_NPROC"
)

// unlimited is where a limit stops meaning anything: the kernel's "max"
// (LONG_MAX, RLIM_INFINITY) and OpenVZ's LONG_MAX barrier.
const unlimited = 1 << 62

// Limits lists every used/limit pair the snapshot has, each with what is
// counted against it as the kernel counts it.
func Limits(s *snapshot.Snapshot) []Limit {
	var out []Limit
	add := func(f snapshot.Forecast, key string, used, max float64) {
		if max <= 0 || max >= unlimited || used < 0 {
			return
		}
		f.Used, f.Max = used, max
		out = append(out, Limit{Key: key, Used: used, Max: max, Forecast: f})
	}
	host := func(name string, used, max float64) {
		add(snapshot.Forecast{Limit: name}, name, used, max)
	}
	k := &s.Kernel
	// Every task takes a pid, threads included (alloc_pid), and counts
	// against threads-max (copy_process: nr_threads >= max_threads).
	if s.Processes.Threads > 0 {
		host(PidMax, float64(s.Processes.Threads), float64(k.PidMax))
		host(ThreadsMax, float64(s.Processes.Threads), float64(k.ThreadsMax))
	}
	if f := k.FileNr; f != nil {
		host(FileMax, float64(f.Allocated), float64(f.Max))
	}
	if st := k.Sockstat; st != nil {
		// tcp_too_many_orphans() shifts the count by up to 2 for the most
		// penalized sockets: resets begin at a quarter of the sysctl.
		host(TCPMaxOrphans, float64(st.TCP.Orphan), float64(k.TCPMaxOrphans/4))
		if len(k.TCPMemPages) == 3 && !st.TCP.NoMem {
			host(TCPMem, float64(st.TCP.MemPages), float64(k.TCPMemPages[2]))
		}
	}
	if c := k.Conntrack; c != nil {
		host(NfConntrackMax, float64(c.Count), float64(c.Max))
	}
	for _, b := range s.Beancounters {
		// Most resources fail at the barrier (numothersock, numproc...);
		// the limit is the hard ceiling of the few that tolerate it.
		add(snapshot.Forecast{Limit: Beancounter, UID: b.UID, Resource: b.Resource},
			"bc/"+b.UID+"/"+b.Resource, float64(b.Held), float64(b.Barrier))
	}
	for i := range s.Cgroups {
		c := &s.Cgroups[i]
		if c.PidsMax != nil && c.PidsCurrent != nil {
			add(snapshot.Forecast{Limit: PidsMax, Cgroup: c.Path}, "cg/pids"+c.Path,
				float64(*c.PidsCurrent), float64(*c.PidsMax))
		}
		if c.MemoryMax != nil && c.MemoryCurrent != nil {
			// The working set, as the kubelet and cAdvisor count it:
			// inactive page cache is reclaimed at the limit, and a cache
			// filling up is not a leak.
			used := float64(c.WorkingSet())
			add(snapshot.Forecast{Limit: MemoryMax, Cgroup: c.Path}, "cg/memory"+c.Path, used, float64(*c.MemoryMax))
		}
	}
	for i := range s.Processes.List {
		p := &s.Processes.List[i]
		if p.FDLimit <= 0 || p.FDs < 0 {
			continue
		}
		// Keyed by start time as well: a recycled pid is a new process.
		key := "nofile/" + strconv.Itoa(p.PID) + "@" + strconv.FormatInt(p.StartTime.UnixNano(), 10)
		add(snapshot.Forecast{Limit: RlimitNofile, PID: p.PID, Comm: p.Comm, User: p.User}, key, float64(p.FDs), float64(p.FDLimit))
		if n := len(out); n > 0 && out[n-1].Key == key {
			out[n-1].Start = p.StartTime
		}
	}
	for _, u := range s.Processes.Users {
		// RLIMIT_NPROC counts the real uid's tasks, threads included
		// (copy_process); root is exempt (CAP_SYS_RESOURCE).
		if u.UID == 0 || u.NprocLimit <= 0 {
			continue
		}
		add(snapshot.Forecast{Limit: RlimitNproc, User: u.User, UID: strconv.FormatUint(uint64(u.UID), 10)},
			"nproc/"+strconv.FormatUint(uint64(u.UID), 10), float64(u.Threads), float64(u.NprocLimit))
	}
	return out
}
