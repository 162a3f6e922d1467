package doctor

import (
	"slices"
	"strings"
	"testing"

	"github.com/picket-guard/picket/internal/snapshot"
)

func holder(pid int, comm string, unix, udp, tcp, fds int, limit int64) snapshot.Holder {
	c := snapshot.SocketCounts{Unix: unix, UDP: udp, TCP: tcp}
	return snapshot.Holder{PID: pid, User: "app", UID: 1000, Comm: comm, SocketCounts: c, Total: c.Sum(), FDs: fds, FDLimit: limit}
}

func TestOtherSockets(t *testing.T) {
	for _, tc := range []struct {
		name    string
		holders []snapshot.Holder
		totals  snapshot.SocketCounts
		want    Severity
		flagged []int
	}{
		{"nobody holds any", nil, snapshot.SocketCounts{Unix: 3}, OK, nil},
		{"a leak: thousands and most of them", []snapshot.Holder{holder(42, "leaky", 2500, 500, 0, 3010, 65536), holder(1, "systemd", 20, 0, 0, 50, 1024)},
			snapshot.SocketCounts{Unix: 2600, UDP: 520}, Warning, []int{42}},
		{"thousands but not a large share", []snapshot.Holder{holder(42, "busy", 1500, 0, 0, 1510, 65536)},
			snapshot.SocketCounts{Unix: 4000}, OK, nil},
		{"a large share but few", []snapshot.Holder{holder(42, "small", 900, 0, 0, 910, 65536)},
			snapshot.SocketCounts{Unix: 1000}, OK, nil},
		{"near its own fd limit", []snapshot.Holder{holder(43, "tight", 10, 0, 800, 900, 1024)},
			snapshot.SocketCounts{Unix: 100, TCP: 800}, Warning, []int{43}},
		{"fd limit unknown", []snapshot.Holder{holder(43, "tight", 10, 0, 800, 900, 0)},
			snapshot.SocketCounts{Unix: 100, TCP: 800}, OK, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := healthy()
			s.Sockets.Processes = tc.holders
			if tc.holders == nil {
				s.Sockets.Processes = []snapshot.Holder{}
			}
			s.Sockets.Totals = tc.totals
			f := run(t, OtherSockets{}, nil, s)
			wantSeverity(t, f, tc.want)
			if evInt(t, f, "non_tcp_total") != int64(tc.totals.NonTCP()) || evInt(t, f, "unix") != int64(tc.totals.Unix) {
				t.Errorf("totals evidence = %v", f.Evidence)
			}
			v, _ := f.Evidence.Get("top_holders")
			top := v.(HolderRows)
			n := 0
			for _, h := range tc.holders {
				if h.NonTCP() > 0 {
					n++
				}
			}
			if len(top) != n {
				t.Errorf("top holders = %v, want %d (always listed)", top, n)
			}
			v, _ = f.Evidence.Get("flagged")
			var got []int
			for _, h := range v.(HolderRows) {
				got = append(got, h.PID)
			}
			if !slices.Equal(got, tc.flagged) {
				t.Errorf("flagged %v, want %v", got, tc.flagged)
			}
			for _, pid := range tc.flagged {
				if !strings.Contains(f.Title, "pid "+itoa(pid)) || !strings.Contains(strings.Join(f.Fix, "\n"), "'pid="+itoa(pid)+",'") {
					t.Errorf("pid %d not named: %q / %q", pid, f.Title, f.Fix)
				}
			}
		})
	}
}

// TestOtherSocketsTop: holders are ranked by non-TCP sockets (TCP-only ones
// left out), with counts by type, at most Top rows.
func TestOtherSocketsTop(t *testing.T) {
	s := healthy()
	for i := 0; i < 15; i++ {
		s.Sockets.Processes = append(s.Sockets.Processes, holder(100+i, "w", i, 1, 0, 20, 1024))
	}
	s.Sockets.Processes = append(s.Sockets.Processes, holder(7, "tcponly", 0, 0, 500, 510, 65536))
	f := run(t, OtherSockets{}, nil, s)
	v, _ := f.Evidence.Get("top_holders")
	top := v.(HolderRows)
	if len(top) != 10 || top[0].PID != 114 || top[0].Unix != 14 || top[0].UDP != 1 || top[0].NonTCP != 15 {
		t.Errorf("top = %+v", top)
	}
	for _, h := range top {
		if h.PID == 7 {
			t.Errorf("a TCP-only holder among non-TCP holders")
		}
	}
}

func TestOtherSocketsNoScan(t *testing.T) {
	s := healthy()
	setProcs(s, nil)
	wantSeverity(t, run(t, OtherSockets{}, nil, s), Unknown)
}
