package history

import (
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/picket-guard/picket/internal/snapshot"
)

// SeriesOrphans is the TCP orphan count, the series PeakOrphans reads.
const SeriesOrphans = "kernel.sockstat.tcp.orphan"

// GroupSeries names a user × command group's series; metric is count,
// threads or rss_bytes.
func GroupSeries(user string, uid uint32, comm, metric string) string {
	return string(appendGroup(nil, user, uid, comm, metric))
}

// HolderSeries names a socket holder's series; metric is a socket type
// (tcp, udp, unix, raw, netlink, packet, other) or total. start is the
// process's start time (zero when unknown).
func HolderSeries(pid int, start time.Time, comm, metric string) string {
	return string(appendHolder(nil, pid, start.Unix(), !start.IsZero(), comm, metric))
}

// CgroupSeries names a limited cgroup's series; metric is pids (tasks,
// pids.current) or working_set (bytes: memory.current less inactive file).
// path is the cgroup's, "/" first.
func CgroupSeries(path, metric string) string {
	return "cgroup" + path + "/" + metric
}

// UserSeries names a user's series (metric: threads, what RLIMIT_NPROC
// counts).
func UserSeries(user string, uid uint32, metric string) string {
	if user == "" || strings.IndexByte(user, '/') >= 0 {
		user = strconv.FormatUint(uint64(uid), 10)
	}
	return "user/" + user + "/" + metric
}

// Bounds on the series a look adds for the forecasts' limits: a host node
// listing every container's beancounters, or thousands of limited cgroups,
// keeps the first ones (the collector's order: root first, breadth first).
const (
	maxBeancounterRows = 128
	maxCgroupSeries    = 256
)

func appendGroup(b []byte, user string, uid uint32, comm, metric string) []byte {
	b = append(b, "group/"...)
	if user == "" || strings.IndexByte(user, '/') >= 0 {
		b = strconv.AppendUint(b, uint64(uid), 10)
	} else {
		b = append(b, user...)
	}
	b = append(b, '/')
	b = append(b, comm...)
	b = append(b, '/')
	return append(b, metric...)
}

func appendHolder(b []byte, pid int, start int64, hasStart bool, comm, metric string) []byte {
	b = append(b, "holder/"...)
	b = strconv.AppendInt(b, int64(pid), 10)
	if hasStart {
		b = append(b, '@')
		b = strconv.AppendInt(b, start, 10)
	}
	b = append(b, '/')
	b = append(b, comm...)
	b = append(b, '/')
	return append(b, metric...)
}

// isProcSeries tells per-process series from host ones.
func isProcSeries(name string) bool { return strings.IndexByte(name, '/') >= 0 }

func streamOf(name string) stream {
	if isProcSeries(name) {
		return procStream
	}
	return hostStream
}

// scaleOf is how many decimal places a series keeps: PSI averages have two
// (as /proc/pressure prints them), everything else is a count.
func scaleOf(name string) int8 {
	if strings.HasPrefix(name, "memory.psi.") {
		return 2
	}
	return 0
}

var pow10 = [...]float64{1, 10, 100, 1000}

// toStored turns a value into the integer kept on disk, clamped to what a
// float64 holds exactly (no count comes near it).
func toStored(v float64, scale int8) int64 {
	x := math.Round(v * pow10[scale])
	const lim = 1 << 53
	switch {
	case math.IsNaN(x):
		return 0
	case x > lim:
		return lim
	case x < -lim:
		return -lim
	}
	return int64(x)
}

func fromStored(v float64, scale int8) float64 {
	if scale == 0 {
		return v
	}
	return v / pow10[scale]
}

// socketTypes are a holder's per-type series, in SocketCounts' order.
var socketTypes = [...]string{"tcp", "udp", "unix", "raw", "netlink", "packet", "other"}

func socketCounts(c snapshot.SocketCounts) [len(socketTypes)]int {
	return [...]int{c.TCP, c.UDP, c.Unix, c.Raw, c.Netlink, c.Packet, c.Other}
}

// hostValues calls add for every host series the snapshot has. Sources the
// snapshot lacks (no sockstat, no PSI, a limit it did not read) give no
// sample rather than a zero: a missing number is not a low one.
func hostValues(s *snapshot.Snapshot, add func(name string, v float64)) {
	k := &s.Kernel
	if st := k.Sockstat; st != nil {
		add("kernel.sockstat.sockets_used", float64(st.SocketsUsed))
		add("kernel.sockstat.tcp.inuse", float64(st.TCP.Inuse))
		add(SeriesOrphans, float64(st.TCP.Orphan))
		add("kernel.sockstat.tcp.tw", float64(st.TCP.TW))
		add("kernel.sockstat.tcp.alloc", float64(st.TCP.Alloc))
		add("kernel.sockstat.tcp.mem_pages", float64(st.TCP.MemPages))
		add("kernel.sockstat.udp.inuse", float64(st.UDP.Inuse))
		add("kernel.sockstat.udp.mem_pages", float64(st.UDP.MemPages))
	}
	positive := func(name string, v int64) {
		if v > 0 {
			add(name, float64(v))
		}
	}
	positive("kernel.tcp_max_orphans", k.TCPMaxOrphans)
	if len(k.TCPMemPages) == 3 {
		positive("kernel.tcp_mem_pages.high", k.TCPMemPages[2])
	}
	if f := k.FileNr; f != nil {
		add("kernel.file_nr.allocated", float64(f.Allocated))
		positive("kernel.file_nr.max", f.Max)
	}
	positive("kernel.pid_max", k.PidMax)
	positive("kernel.threads_max", k.ThreadsMax)
	if c := k.Conntrack; c != nil {
		add("kernel.conntrack.count", float64(c.Count))
		positive("kernel.conntrack.max", c.Max)
	}
	if s.Processes.Total > 0 {
		add("processes.total", float64(s.Processes.Total))
		add("processes.threads", float64(s.Processes.Threads))
	}
	for _, res := range [...]string{"memory", "cpu", "io"} {
		p, ok := s.Memory.PSI[res]
		if !ok {
			continue
		}
		add("memory.psi."+res+".some_avg10", p.SomeAvg10)
		if p.HasFull {
			add("memory.psi."+res+".full_avg10", p.FullAvg10)
		}
	}
	for _, v := range [...]string{"pswpin", "pswpout", "pgmajfault"} {
		if n, ok := s.Memory.VMStat[v]; ok {
			add("memory.vmstat."+v, float64(n))
		}
	}
	// What the kernel said, per kind once it has said it (a dozen kinds
	// at most, the catalogue's: never a name from a message), and the
	// counters behind the messages.
	if l := s.KernelLog; l != nil && l.Available {
		for _, k := range l.Kinds {
			if k.Count > 0 {
				add("kernel_log."+k.Kind, float64(k.Count))
			}
		}
	}
	// Beancounters with a barrier (not LONG_MAX): held and barrier, the
	// pair the forecast fits. A name with a "/" is not a host series.
	rows := 0
	for _, b := range s.Beancounters {
		if b.Barrier == 0 || b.Barrier >= 1<<62 || strings.IndexByte(b.UID, '/') >= 0 || strings.IndexByte(b.Resource, '/') >= 0 {
			continue
		}
		if rows++; rows > maxBeancounterRows {
			break
		}
		add("beancounter."+b.UID+"."+b.Resource+".held", float64(b.Held))
		add("beancounter."+b.UID+"."+b.Resource+".barrier", float64(b.Barrier))
	}
	if n := k.Netstat; n != nil {
		add("kernel.netstat.tcp_abort_on_memory", float64(n.AbortOnMemory))
		add("kernel.netstat.listen_overflows", float64(n.ListenOverflows))
	}
	if c := k.ConntrackStat; c != nil {
		add("kernel.conntrack.drop", float64(c.Drop))
	}
}
