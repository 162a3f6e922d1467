package doctor

import (
	"slices"
	"strings"
	"testing"
	"time"
)

type peakHistory struct {
	peak  int
	ok    bool
	since time.Time
}

func (h *peakHistory) PeakOrphans(since time.Time) (int, bool) {
	h.since = since
	return h.peak, h.ok
}

func TestTCPOrphans(t *testing.T) {
	for _, tc := range []struct {
		name    string
		orphans int
		limit   int64
		want    Severity
		rec     int64
		title   string
	}{
		{"idle", 1, 65536, OK, 65536, "within"},
		{"x4 equals the limit", 16384, 65536, OK, 66000, "within"},
		{"x4 just above", 16385, 65536, Warning, 66000, "×4 = 65540"},
		{"Out of socket memory case 1", 21564, 65536, Warning, 87000, "×4 = 86256"},
		{"x2 equals the limit", 32768, 65536, Warning, 140000, "×4 = 131072"},
		{"x2 above", 32769, 65536, Warning, 140000, "×2 = 65538"},
		{"alone equal to the limit", 65536, 65536, Warning, 270000, "×2"},
		{"alone above", 65537, 65536, Critical, 270000, "exceed tcp_max_orphans 65536: sockets are reset"},
		{"small limit", 300, 1024, Warning, 1200, "×4 = 1200"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := healthy()
			s.Kernel.Sockstat.TCP.Orphan = tc.orphans
			s.Kernel.TCPMaxOrphans = tc.limit
			f := run(t, TCPOrphans{}, nil, s)
			wantSeverity(t, f, tc.want)
			if got := evInt(t, f, "recommended_tcp_max_orphans"); got != tc.rec {
				t.Errorf("recommended = %d, want %d", got, tc.rec)
			}
			o := int64(tc.orphans)
			if evInt(t, f, "orphans") != o || evInt(t, f, "tcp_max_orphans") != tc.limit ||
				evInt(t, f, "orphans_x2") != 2*o || evInt(t, f, "orphans_x4") != 4*o {
				t.Errorf("evidence = %v", f.Evidence)
			}
			if !strings.Contains(f.Title, tc.title) {
				t.Errorf("title %q lacks %q", f.Title, tc.title)
			}
			if tc.want == OK {
				if len(f.Fix) != 0 {
					t.Errorf("fix on ok: %v", f.Fix)
				}
				return
			}
			for _, want := range []string{
				"sysctl -w net.ipv4.tcp_max_orphans=" + itoa(tc.rec),
				"echo 'net.ipv4.tcp_max_orphans = " + itoa(tc.rec) + "' > /etc/sysctl.d/60-tcp-max-orphans.conf",
			} {
				if !slices.Contains(f.Fix, want) {
					t.Errorf("fix lacks %q: %q", want, f.Fix)
				}
			}
			if !strings.Contains(f.Explanation, "shift") {
				t.Errorf("explanation does not explain the shift")
			}
		})
	}
}

func TestTCPOrphansMissing(t *testing.T) {
	s := healthy()
	s.Kernel.Sockstat = nil
	wantSeverity(t, run(t, TCPOrphans{}, nil, s), Unknown)
	s = healthy()
	s.Kernel.TCPMaxOrphans = 0
	wantSeverity(t, run(t, TCPOrphans{}, nil, s), Unknown)
}

// TestTCPOrphansHistory: with a history the recommendation is 4 × the peak
// it knows, asked for over the configured window, never below now.
func TestTCPOrphansHistory(t *testing.T) {
	s := healthy()
	s.Kernel.Sockstat.TCP.Orphan = 21564
	for _, tc := range []struct {
		h    peakHistory
		rec  int64
		from string
	}{
		{peakHistory{peak: 30000, ok: true}, 120000, "history"},
		{peakHistory{peak: 100, ok: true}, 87000, "history"}, // the count now is higher than any recorded
		{peakHistory{ok: false}, 87000, "current"},
	} {
		h := tc.h
		in := Input{Cur: s, Thresholds: DefaultThresholds(), History: &h}
		f := runOne(TCPOrphans{}, in)
		if got := evInt(t, f, "recommended_tcp_max_orphans"); got != tc.rec {
			t.Errorf("peak %d: recommended %d, want %d", tc.h.peak, got, tc.rec)
		}
		if v, _ := f.Evidence.Get("peak_from"); v != tc.from {
			t.Errorf("peak %d: from %v, want %s", tc.h.peak, v, tc.from)
		}
		if !h.since.Equal(t0.Add(-7 * 24 * time.Hour)) {
			t.Errorf("history asked since %v", h.since)
		}
	}
}
