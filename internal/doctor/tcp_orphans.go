package doctor

import (
	"fmt"

	"github.com/picket-guard/picket/internal/snapshot"
)

// orphanMemoryBytes is what one orphan may pin in unswappable memory, per
// Documentation/networking/ip-sysctl.rst (tcp_max_orphans: "each orphan eats
// up to ~64K of unswappable memory").
const orphanMemoryBytes = 64 << 10

// TCPOrphans is the kernel's tcp_too_many_orphans() test, done from outside
// ("Out of socket memory"). When a closed socket's retransmit or
// zero-window-probe timer fires, tcp_out_of_resources() (net/ipv4/tcp_timer.c)
// computes a penalty shift of 0, 1 or 2 and resets the socket when
// orphans << shift > tcp_max_orphans. So the limit bites at a quarter of
// tcp_max_orphans for the most penalized sockets: warning when orphans × 4
// exceed it, critical when the orphans alone do (then tcp_close() resets
// every socket that would linger after close(), shift 0).
type TCPOrphans struct{}

func (TCPOrphans) ID() string { return "tcp-orphans" }

func (TCPOrphans) Run(in Input) Finding {
	s := in.Cur
	k := s.Kernel
	if k.Sockstat == nil || k.TCPMaxOrphans <= 0 {
		why := "The orphan count is the \"orphan\" field of /proc/net/sockstat and the limit is /proc/sys/net/ipv4/tcp_max_orphans; "
		switch {
		case k.Sockstat == nil && k.TCPMaxOrphans <= 0:
			why += "neither could be read."
		case k.Sockstat == nil:
			why += "sockstat could not be read."
		default:
			why += "tcp_max_orphans could not be read."
		}
		if e, ok := s.SourceError(snapshot.SourceSockstat); ok {
			why += " " + e
		}
		return unknownFinding("orphan count or tcp_max_orphans not readable", why, Evidence{})
	}
	orphans := int64(k.Sockstat.TCP.Orphan)
	limit := k.TCPMaxOrphans
	peak, peakFrom := orphans, "current"
	if in.History != nil {
		if p, ok := in.History.PeakOrphans(s.Time.Add(-in.Thresholds.OrphanPeakWindow)); ok {
			if int64(p) > peak {
				peak = int64(p)
			}
			peakFrom = "history"
		}
	}
	// Never recommend lowering the limit: the rule is "at least 4 × peak".
	rec := max(readableCeil(4*peak), limit)

	ev := Evidence{}
	ev.Add("orphans", orphans)
	ev.Add("tcp_max_orphans", limit)
	ev.Add("orphans_x2", orphans*2)
	ev.Add("orphans_x4", orphans*4)
	ev.Add("percent_of_limit", percent(float64(orphans), float64(limit)))
	ev.Add("peak_orphans", peak)
	ev.Add("peak_from", peakFrom)
	ev.Add("recommended_tcp_max_orphans", rec)
	ev.Add("recommended_worst_case_bytes", rec*orphanMemoryBytes)
	ev.Add("closing_states", closingStates(s))

	// The kernel's test is orphans << shift > tcp_max_orphans: the most
	// penalized sockets (shift 2) are reset once orphans pass a quarter of
	// the limit, every socket once they pass the limit.
	m := gauge("orphans", float64(orphans), float64(limit))
	m.Warn, m.Crit = above(float64(limit)/4), above(float64(limit))
	f := Finding{Evidence: ev, Metrics: []Metric{
		m,
		gauge("orphans_x2", float64(orphans*2), float64(limit)),
		gauge("orphans_x4", float64(orphans*4), float64(limit)),
		gauge("tcp_max_orphans", float64(limit), 0),
		gauge("peak_orphans", float64(peak), float64(limit)),
	}}
	switch {
	case orphans > limit:
		f.Severity = Critical
		f.Title = fmt.Sprintf("%d orphans exceed tcp_max_orphans %d: sockets are reset as soon as they are closed", orphans, limit)
	case orphans*2 > limit:
		f.Severity = Warning
		f.Title = fmt.Sprintf("%d orphans ×2 = %d exceed tcp_max_orphans %d: penalized sockets are being reset", orphans, orphans*2, limit)
	case orphans*4 > limit:
		f.Severity = Warning
		f.Title = fmt.Sprintf("%d orphans ×4 = %d exceed tcp_max_orphans %d: the most penalized sockets are being reset", orphans, orphans*4, limit)
	default:
		f.Severity = OK
		f.Title = fmt.Sprintf("%d orphans, ×4 = %d within tcp_max_orphans %d", orphans, orphans*4, limit)
	}

	shift := "An orphan is a TCP socket its program has closed but the kernel still keeps, to deliver what was left in " +
		"its send queue and finish the FIN handshake (FIN_WAIT1, CLOSING, LAST_ACK). Each time such a socket's timer fires, " +
		"tcp_out_of_resources() in net/ipv4/tcp_timer.c asks tcp_too_many_orphans() whether orphans << shift > tcp_max_orphans " +
		"(include/net/tcp.h on old kernels, net/ipv4/tcp.c on recent ones). The shift is a penalty: 0 for a normal socket, 1 when " +
		"the peer has sent nothing or kept its window shut for more than 2 × TCP_RTO_MAX (4 minutes), and 1 more when a " +
		"dubious ICMP error arrived. So a socket with shift 1 sees the count doubled and one with shift 2 sees it " +
		"quadrupled. When the test is true the socket is reset at once and the kernel logs \"Out of socket memory\" " +
		"(\"TCP: too many orphaned sockets\" on recent kernels), although the plain count may be far below the limit."
	var now string
	switch f.Severity {
	case Critical:
		now = fmt.Sprintf("Here the orphans alone (%d) exceed the limit (%d): even unpenalized sockets are reset, and tcp_close() "+
			"resets every socket that would linger after close() instead of finishing it, unsent data lost.", orphans, limit)
	case Warning:
		now = fmt.Sprintf("Here %d orphans are %.0f%% of the limit %d, but penalized sockets see %d or %d: those are reset and "+
			"the log fills with the message while the count looks harmless (21564 of 65536 is enough at ×4).",
			orphans, percent(float64(orphans), float64(limit)), limit, orphans*2, orphans*4)
	default:
		now = fmt.Sprintf("Here even a socket penalized twice sees %d, within the limit %d.", orphans*4, limit)
	}
	sizing := fmt.Sprintf("The remedy is to size tcp_max_orphans at 4 × the peak orphan count, so that penalized sockets are "+
		"not reset at peak: %d, rounded up from 4 × %d (%s). Each orphan can pin up to 64 KiB of unswappable memory, so %d "+
		"orphans could hold %s at worst; lower the orphans instead (a peer that never reads, a server closing with "+
		"unsent data) if that is more than the host can spare.", rec, peak, peakDescription(peakFrom), rec,
		snapshot.HumanBytes(uint64(rec)*orphanMemoryBytes))
	f.Explanation = paragraphs(shift, now, sizing)
	if f.Severity != OK {
		f.Fix = []string{
			fmt.Sprintf("sysctl -w net.ipv4.tcp_max_orphans=%d", rec),
			fmt.Sprintf("echo 'net.ipv4.tcp_max_orphans = %d' > /etc/sysctl.d/60-tcp-max-orphans.conf", rec),
			"# see who the orphans talk to: ss -tn state fin-wait-1 state closing state last-ack",
		}
	}
	return f
}

func peakDescription(from string) string {
	if from == "history" {
		return "the highest count picket has recorded"
	}
	return "the count now; picket has no history yet, so check again at peak traffic"
}

// closingStates is the TCP states orphans live in, from the socket tables.
// Not every socket in them is an orphan (a program may still hold one after
// shutdown()), so these are context, not the count.
func closingStates(s *snapshot.Snapshot) map[string]int {
	out := map[string]int{}
	for _, st := range []string{"FIN_WAIT1", "FIN_WAIT2", "CLOSING", "LAST_ACK"} {
		out[st] = s.Sockets.TCPStates[st]
	}
	return out
}
