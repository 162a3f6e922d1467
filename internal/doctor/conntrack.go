package doctor

import (
	"fmt"

	"github.com/picket-guard/picket/internal/snapshot"
	"github.com/picket-guard/picket/internal/term"
)

// conntrackEntryBytes is roughly what one nf_conn costs (slab object plus
// hash bucket) on a 64-bit kernel; it is for sizing advice only.
const conntrackEntryBytes = 320

// Conntrack sets netfilter's connection table (nf_conntrack_count) against
// nf_conntrack_max. When the table is full and no entry can be evicted
// early, __nf_conntrack_alloc() in net/netfilter/nf_conntrack_core.c drops
// the packet and logs "nf_conntrack: table full, dropping packet": new
// connections time out with no error anywhere else. Without the module
// loaded there is no table to fill, so that is ok, not unknown.
type Conntrack struct{}

func (Conntrack) ID() string { return "conntrack" }

func (Conntrack) Run(in Input) Finding {
	s := in.Cur
	t := in.Thresholds
	c := s.Kernel.Conntrack
	if c == nil {
		// The conntrack source reports a malformed file as an error; a
		// missing one is the module not being loaded.
		if e, ok := s.SourceError(snapshot.SourceConntrack); ok {
			return unknownFinding("conntrack files not readable", "nf_conntrack_count or nf_conntrack_max exists but could not be read: "+term.Escape(e),
				Evidence{{"loaded", true}})
		}
		return Finding{
			Severity: OK,
			Title:    "nf_conntrack not loaded: no connection table to fill",
			Evidence: Evidence{{"loaded", false}},
			Explanation: "There is no /proc/sys/net/netfilter/nf_conntrack_count: the connection tracking module is not loaded, so " +
				"no packet can be dropped for a full table. It loads when a firewall rule or NAT needs it; this check then applies.",
		}
	}
	ev := Evidence{}
	ev.Add("loaded", true)
	ev.Add("count", c.Count)
	ev.Add("max", c.Max)
	ev.Add("percent", percent(float64(c.Count), float64(c.Max)))
	if c.Max <= 0 {
		return unknownFinding("nf_conntrack_max is 0", "The table's limit reads 0, so its use cannot be judged.", ev)
	}
	sev := limitLevel(c.Count, c.Max, t)
	m := gauge("conntrack", float64(c.Count), float64(c.Max))
	m.Warn, m.Crit = limitRanges(c.Max, t)
	f := Finding{Severity: sev, Evidence: ev, Metrics: []Metric{m, percentMetric("conntrack_percent", share(c.Count, c.Max))}}
	p := percent(float64(c.Count), float64(c.Max))
	switch sev {
	case OK:
		f.Title = fmt.Sprintf("%d tracked connections, %.1f%% of nf_conntrack_max %d", c.Count, p, c.Max)
	default:
		f.Title = fmt.Sprintf("conntrack table %.1f%% full (%d of %d): new connections are dropped when it fills", p, c.Count, c.Max)
	}
	f.Explanation = "netfilter keeps an entry for every connection it tracks (for NAT and for stateful rules such as " +
		"-m conntrack --ctstate ESTABLISHED), until the connection closes and its timeout expires. At nf_conntrack_max a new " +
		"connection's first packet is dropped unless an unreplied entry can be evicted (early_drop), and the kernel logs " +
		"\"nf_conntrack: table full, dropping packet\". Clients see timeouts, the server sees nothing."
	if sev == OK {
		return f
	}
	n := readableCeil(max(c.Count*2, c.Max))
	f.Fix = []string{
		fmt.Sprintf("sysctl -w net.netfilter.nf_conntrack_max=%d", n),
		fmt.Sprintf("echo 'net.netfilter.nf_conntrack_max = %d' > /etc/sysctl.d/60-conntrack.conf", n),
		fmt.Sprintf("# each entry costs about %d bytes of kernel memory: %d entries ≈ %d MiB", conntrackEntryBytes, n, n*conntrackEntryBytes>>20),
		"# or track less: a NOTRACK rule in the raw table for high-volume stateless traffic (DNS, a local cache)",
	}
	return f
}
