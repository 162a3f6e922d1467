package forecast

import (
	"math"
	"strconv"
	"testing"
	"time"

	"github.com/picket-guard/picket/internal/snapshot"
)

// The tracker thins what it keeps; a trend it was fed look by look for
// three hours is still forecast as the whole series would be, from at
// most maxPoints samples.
func TestTrackerThinsAndStillFits(t *testing.T) {
	tr := NewTracker(Options{})
	s := series{span: 3 * time.Hour, step: 10 * time.Second, sd: 15, limit: constant(32768), f: func(t float64) float64 { return 2000 + 41.0/60*t }}
	for _, x := range s.samples(7) {
		tr.Observe("pid_max", x.Time, x.Used, x.Limit)
	}
	if n := len(tr.paths["pid_max"].s); n > maxPoints {
		t.Fatalf("%d samples kept, bound %d", n, maxPoints)
	}
	e, why := tr.Fit("pid_max", t0)
	want := (32768 - (2000 + 41.0/60*3*3600)) / (41.0 / 60)
	if why != OK || math.Abs(e.Seconds-want)/want > 0.15 {
		t.Fatalf("ETA %.0fs (%s), want %.0fs ±15%%", e.Seconds, why, want)
	}
	tr.Forget(t0.Add(13 * time.Hour))
	if tr.Len() != 0 {
		t.Errorf("a limit unseen for 13h is still kept")
	}
}

func TestLimits(t *testing.T) {
	u := func(v uint64) *uint64 { return &v }
	s := &snapshot.Snapshot{
		Processes: snapshot.Processes{Threads: 500,
			Users: []snapshot.User{{User: "root", UID: 0, Threads: 100, NprocLimit: 200}, {User: "www", UID: 33, Threads: 80, NprocLimit: 100}, {User: "nolimit", UID: 7, NprocLimit: -1}},
			List:  []snapshot.Process{{PID: 42, Comm: "leaky", FDs: 900, FDLimit: 1024, StartTime: t0}, {PID: 43, FDs: 5}}},
		Kernel: snapshot.Kernel{PidMax: 32768, ThreadsMax: 1 << 20, TCPMaxOrphans: 4096, TCPMemPages: []int64{1, 2, 3000},
			FileNr:    &snapshot.FileNr{Allocated: 2000, Max: 1 << 63 / 2},
			Sockstat:  &snapshot.Sockstat{TCP: snapshot.SockstatTCP{Orphan: 100, MemPages: 50}},
			Conntrack: &snapshot.Conntrack{Count: 10, Max: 65536}},
		Beancounters: []snapshot.Beancounter{{UID: "101", Resource: "numothersock", Held: 300, Barrier: 400, Limit: 400},
			{UID: "101", Resource: "kmemsize", Held: 3, Barrier: 9223372036854775807, Limit: 9223372036854775807}},
		Cgroups: []snapshot.Cgroup{{Path: "/system.slice/x.service", PidsCurrent: u(10), PidsMax: u(100),
			MemoryCurrent: u(900), MemoryMax: u(1000), MemoryStat: map[string]uint64{"inactive_file": 400}}},
	}
	got := map[string]Limit{}
	for _, l := range Limits(s) {
		got[l.Key] = l
	}
	want := map[string][2]float64{
		"pid_max": {500, 32768}, "threads-max": {500, 1 << 20}, "tcp_max_orphans": {100, 1024}, "tcp_mem": {50, 3000},
		"nf_conntrack_max": {10, 65536}, "bc/101/numothersock": {300, 400},
		"cg/pids/system.slice/x.service": {10, 100}, "cg/memory/system.slice/x.service": {500, 1000},
		"nofile/42@" + itoa(t0.UnixNano()): {900, 1024}, "nproc/33": {80, 100},
	}
	for k, w := range want {
		l, ok := got[k]
		if !ok {
			t.Errorf("no limit %q", k)
			continue
		}
		if l.Used != w[0] || l.Max != w[1] {
			t.Errorf("%s: %v/%v, want %v/%v", k, l.Used, l.Max, w[0], w[1])
		}
	}
	if len(got) != len(want) {
		t.Errorf("limits %v, want only %d (no unlimited file-max, kmemsize, root's or unlimited nproc)", got, len(want))
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// A forecast says when it was fitted and on which series, and its line
// (Max − rate × (At + ETA − t)) starts at the fitted level: the dashboard
// draws that line and nothing else.
func TestUpdateNamesTheFit(t *testing.T) {
	tr := NewTracker(Options{Series: func(l Limit) string { return "series of " + l.Key }})
	var got []snapshot.Forecast
	var last time.Time
	for i := 0; i <= 120; i++ {
		last = t0.Add(time.Duration(i) * 15 * time.Second)
		s := &snapshot.Snapshot{Time: last, Processes: snapshot.Processes{Threads: 2000 + 2*i},
			Kernel: snapshot.Kernel{PidMax: 32768, ThreadsMax: 4000}}
		got = tr.Update(s)
	}
	// pid_max is 63 hours off on half an hour of looks: beyond 12×.
	if len(got) != 1 {
		t.Fatalf("forecasts %+v, want threads-max's alone", got)
	}
	for _, f := range got {
		if !f.At.Equal(last) || f.Series != "series of "+f.Limit {
			t.Errorf("%s: at %v series %q, want %v and %q", f.Limit, f.At, f.Series, last, "series of "+f.Limit)
		}
		if start := f.Max - f.RatePerSecond*f.ETASeconds; math.Abs(start-f.Used) > 1 {
			t.Errorf("%s: the line starts at %.1f, the fitted level is %.0f", f.Limit, start, f.Used)
		}
	}
}
