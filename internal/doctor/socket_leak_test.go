package doctor

import (
	"testing"
	"time"

	"github.com/picket-guard/picket/internal/snapshot"
)

// fakeGrowth says pid 42 leaks 60 sockets an hour; everything else is flat.
type fakeGrowth struct{}

func (fakeGrowth) PeakOrphans(time.Time) (int, bool) { return 0, false }

func (fakeGrowth) SocketGrowth(pid int, _ time.Time, _ string, _ time.Duration) (float64, bool, bool) {
	if pid == 42 {
		return 60, true, true
	}
	return 0.5, false, true
}

func TestSocketLeak(t *testing.T) {
	s := &snapshot.Snapshot{}
	s.Sockets.Processes = []snapshot.Holder{
		{PID: 42, User: "app", Comm: "leaky\x1b[2J", SocketCounts: snapshot.SocketCounts{Unix: 400}, Total: 400, FDs: 410, FDLimit: 1024},
		{PID: 7, User: "root", Comm: "steady", SocketCounts: snapshot.SocketCounts{UDP: 900}, Total: 900, FDs: 905, FDLimit: 4096},
		{PID: 9, User: "root", Comm: "small", SocketCounts: snapshot.SocketCounts{Unix: 20}, Total: 20},
	}
	f := SocketLeak{}.Run(Input{Cur: s, History: fakeGrowth{}})
	if f.Severity != Warning {
		t.Fatalf("severity %s: %s", f.Severity, f.Title)
	}
	if want := `leaky\x1b[2J (pid 42, app) gains 60 sockets an hour, now 400`; f.Title != want {
		t.Errorf("title %q, want %q", f.Title, want)
	}
	// (1024-410)/60 hours to the fd limit.
	if len(f.Fix) == 0 || f.Explanation == "" {
		t.Errorf("no fix or explanation: %+v", f)
	}
	if ok := (SocketLeak{}).Run(Input{Cur: s}); ok.Severity != OK {
		t.Errorf("without history: %s", ok.Severity)
	}
	s.Sockets.Processes = s.Sockets.Processes[1:]
	if ok := (SocketLeak{}).Run(Input{Cur: s, History: fakeGrowth{}}); ok.Severity != OK {
		t.Errorf("no leak: %s %s", ok.Severity, ok.Title)
	}
}
