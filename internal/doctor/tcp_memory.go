package doctor

import (
	"fmt"

	"github.com/picket-guard/picket/internal/snapshot"
)

// TCPMemory compares the pages TCP holds ("mem" in /proc/net/sockstat)
// with net.ipv4.tcp_mem, the other half of "Out of socket memory": __sk_mem_raise_allocated() (net/core/sock.c) enters memory
// pressure above tcp_mem[1] and refuses buffer memory above tcp_mem[2], where
// tcp_out_of_memory() resets sockets. Both numbers are pages, not bytes:
// the evidence shows both, with the snapshot's page size.
type TCPMemory struct{}

func (TCPMemory) ID() string { return "tcp-memory" }

func (TCPMemory) Run(in Input) Finding {
	s := in.Cur
	k := s.Kernel
	if k.Sockstat == nil || len(k.TCPMemPages) != 3 || k.Sockstat.TCP.NoMem {
		why := "TCP's pages are the \"mem\" field of /proc/net/sockstat and the limits are /proc/sys/net/ipv4/tcp_mem; "
		switch {
		case k.Sockstat == nil:
			why += "sockstat could not be read."
		case k.Sockstat.TCP.NoMem:
			why += "this kernel's sockstat has no mem field on its TCP line, so TCP's memory cannot be told (not 0)."
		default:
			why += "tcp_mem could not be read."
		}
		return unknownFinding("TCP memory or tcp_mem not readable", why, Evidence{})
	}
	page := int64(k.PageSize)
	if page <= 0 {
		page = 4096
	}
	mem := int64(k.Sockstat.TCP.MemPages)
	low, pressure, high := k.TCPMemPages[0], k.TCPMemPages[1], k.TCPMemPages[2]
	ev := Evidence{}
	ev.Add("mem_pages", mem)
	ev.Add("mem_bytes", mem*page)
	ev.Add("tcp_mem_low_pages", low)
	ev.Add("tcp_mem_pressure_pages", pressure)
	ev.Add("tcp_mem_high_pages", high)
	ev.Add("tcp_mem_low_bytes", low*page)
	ev.Add("tcp_mem_pressure_bytes", pressure*page)
	ev.Add("tcp_mem_high_bytes", high*page)
	ev.Add("page_size", page)
	ev.Add("percent_of_high", percent(float64(mem), float64(high)))
	ev.Add("tcp_sockets", k.Sockstat.TCP.Alloc)
	ev.Add("orphans", k.Sockstat.TCP.Orphan)

	// Pages, as the kernel counts and compares them: pressure above
	// tcp_mem[1], refusals above tcp_mem[2].
	m := gauge("tcp_mem_pages", float64(mem), float64(high))
	m.Warn, m.Crit = above(float64(pressure)), above(float64(high))
	f := Finding{Evidence: ev, Metrics: []Metric{
		m,
		{Label: "tcp_mem", Value: float64(mem * page), UOM: "B", Min: bound(0), Max: bound(float64(high * page))},
		gauge("tcp_mem_low_pages", float64(low), 0),
		gauge("tcp_mem_pressure_pages", float64(pressure), 0),
		gauge("tcp_mem_high_pages", float64(high), 0),
		gauge("tcp_sockets", float64(k.Sockstat.TCP.Alloc), 0),
	}}
	pages := func(n int64) string { return fmt.Sprintf("%d pages (%s)", n, snapshot.HumanBytes(uint64(n*page))) }
	switch {
	case mem > high:
		f.Severity = Critical
		f.Title = fmt.Sprintf("TCP holds %s, above tcp_mem high %s: buffer allocations are refused", pages(mem), pages(high))
	case mem > pressure:
		f.Severity = Warning
		f.Title = fmt.Sprintf("TCP holds %s, above tcp_mem pressure %s: buffers are being squeezed", pages(mem), pages(pressure))
	default:
		f.Severity = OK
		f.Title = fmt.Sprintf("TCP holds %s, below tcp_mem pressure %s", pages(mem), pages(pressure))
	}
	what := "The kernel counts the memory of all TCP socket buffers together, in pages. Below tcp_mem low it leaves TCP " +
		"alone; above pressure it enters memory pressure (tcp_enter_memory_pressure(): buffers are trimmed, windows shrink); " +
		"above high __sk_mem_raise_allocated() in net/core/sock.c refuses buffer memory, and tcp_out_of_memory() makes " +
		"tcp_check_oom() reset sockets with queued data, logging \"Out of socket memory\" or \"out of memory -- consider " +
		"tuning tcp_mem\". This is the rarer of the message's two causes; the common one is the orphan count (tcp-orphans)."
	var now string
	switch f.Severity {
	case OK:
		now = fmt.Sprintf("Here TCP uses %.1f%% of tcp_mem high, so any \"Out of socket memory\" comes from orphans, not memory.",
			percent(float64(mem), float64(high)))
	default:
		now = fmt.Sprintf("Here TCP uses %.1f%% of tcp_mem high. Find the sockets whose queues hold the memory before raising "+
			"the limit: a peer that does not read keeps a full send queue, a program that does not read keeps a full receive queue.",
			percent(float64(mem), float64(high)))
	}
	f.Explanation = paragraphs(what, now)
	if f.Severity == OK {
		return f
	}
	f.Fix = []string{
		"# the sockets with the fullest queues (Recv-Q, then Send-Q):",
		"ss -Htn | sort -k2,2nr | head -20",
		"ss -Htn | sort -k3,3nr | head -20",
	}
	// A larger tcp_mem in the proportions the kernel picks at boot
	// (tcp_init_mem(): low = 3/4, high = 3/2 of pressure), with today's
	// use at three quarters of the new pressure point; only if the new
	// high fits in half of RAM, or it only moves the problem to the OOM
	// killer.
	np := max(readableCeil(mem*4/3), pressure)
	nl, nh := max(np*3/4, low), max(np*3/2, high)
	ev.Add("recommended_tcp_mem_pages", []int64{nl, np, nh})
	f.Evidence = ev
	ram := int64(s.Memory.MemTotalBytes)
	if ram > 0 && nh*page > ram/2 {
		f.Fix = append(f.Fix, fmt.Sprintf("# a tcp_mem high of %d pages (%s) would be more than half of RAM (%s): reduce the queued data instead",
			nh, snapshot.HumanBytes(uint64(nh*page)), snapshot.HumanBytes(uint64(ram))))
		return f
	}
	f.Fix = append(f.Fix,
		fmt.Sprintf("sysctl -w net.ipv4.tcp_mem='%d %d %d'", nl, np, nh),
		fmt.Sprintf("echo 'net.ipv4.tcp_mem = %d %d %d' > /etc/sysctl.d/60-tcp-mem.conf", nl, np, nh))
	return f
}
