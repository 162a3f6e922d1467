package doctor

import (
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/picket-guard/picket/internal/snapshot"
)

func TestMemoryThrashing(t *testing.T) {
	type vm = map[string]uint64
	for _, tc := range []struct {
		name     string
		psi      *snapshot.PSI // nil: no PSI
		prevVM   vm            // nil: one snapshot
		curVM    vm
		secs     float64
		want     Severity
		measured bool
		title    string
	}{
		{"calm", &snapshot.PSI{SomeAvg10: 0.5}, vm{"pswpin": 0, "pswpout": 0, "pgmajfault": 0}, vm{"pswpin": 5, "pswpout": 9, "pgmajfault": 50}, 1, OK, true, "no memory stall"},
		{"psi some 10%", &snapshot.PSI{SomeAvg10: 10}, nil, nil, 0, Warning, false, "tasks waited for memory 10.0%"},
		{"psi full 5%", &snapshot.PSI{SomeAvg10: 6, FullAvg10: 5}, nil, nil, 0, Warning, false, ""},
		{"psi full 20%", &snapshot.PSI{SomeAvg10: 30, FullAvg10: 20}, nil, nil, 0, Critical, false, ""},
		{"psi some 50%", &snapshot.PSI{SomeAvg10: 50}, nil, nil, 0, Critical, false, ""},
		{"no psi, one snapshot", nil, nil, vm{"pswpin": 1}, 0, Unknown, false, "cannot be measured"},
		{"no psi, calm rates", nil, vm{"pswpin": 0, "pswpout": 0, "pgmajfault": 0}, vm{"pswpin": 1, "pswpout": 1, "pgmajfault": 10}, 1, OK, true, "no thrashing"},
		{"swap both ways", &snapshot.PSI{}, vm{"pswpin": 0, "pswpout": 0}, vm{"pswpin": 200, "pswpout": 150}, 1, Warning, true, "200 pages/s swapped in and 150 out"},
		{"swap both ways, hard", &snapshot.PSI{}, vm{"pswpin": 0, "pswpout": 0}, vm{"pswpin": 4200, "pswpout": 6100}, 1, Critical, true, ""},
		{"swap rate over two seconds", &snapshot.PSI{}, vm{"pswpin": 0, "pswpout": 0}, vm{"pswpin": 300, "pswpout": 300}, 2, Warning, true, "150 pages/s"},
		{"swap in only is recovery", &snapshot.PSI{}, vm{"pswpin": 0, "pswpout": 0}, vm{"pswpin": 5000, "pswpout": 0}, 1, OK, true, ""},
		{"major faults without psi", nil, vm{"pgmajfault": 0}, vm{"pgmajfault": 2000}, 1, Warning, true, "2000 major faults/s"},
		{"major faults with psi calm", &snapshot.PSI{}, vm{"pgmajfault": 0}, vm{"pgmajfault": 20000}, 1, OK, true, ""},
		{"oom kills in the interval", &snapshot.PSI{}, vm{"oom_kill": 3}, vm{"oom_kill": 4}, 1, Warning, false, "the OOM killer killed 1 process during"},
		{"counters went back (reboot)", nil, vm{"pswpin": 500, "pswpout": 500}, vm{"pswpin": 1, "pswpout": 1}, 1, Unknown, false, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cur := healthy()
			cur.Memory.PSI = nil
			if tc.psi != nil {
				cur.Memory.PSI = map[string]snapshot.PSI{"memory": *tc.psi}
			}
			cur.Memory.VMStat = tc.curVM
			var prev *snapshot.Snapshot
			if tc.prevVM != nil {
				prev = healthy()
				prev.Time = cur.Time.Add(-time.Duration(tc.secs * float64(time.Second)))
				prev.Memory.VMStat = maps.Clone(tc.prevVM)
			}
			f := run(t, MemoryThrashing{}, prev, cur)
			wantSeverity(t, f, tc.want)
			if v, _ := f.Evidence.Get("rates_measured"); tc.want != Unknown && v != tc.measured {
				t.Errorf("rates_measured = %v, want %v", v, tc.measured)
			}
			if !strings.Contains(f.Title, tc.title) {
				t.Errorf("title %q lacks %q", f.Title, tc.title)
			}
			if prev == nil && tc.want != Unknown && !strings.Contains(f.Explanation, "--interval 0") {
				t.Errorf("one snapshot, but the explanation does not say the rates were not measured")
			}
		})
	}
}

// TestMemoryThrashingNamesGrowth: the thrashing web server — when it fires, the group whose
// memory grew fastest is named, with its parent to look at.
func TestMemoryThrashingNamesGrowth(t *testing.T) {
	base := healthy().Processes.List
	parent := snapshot.Process{PID: 500, PPID: 1, User: "root", Comm: "apache2", Threads: 1, RSSBytes: 16 << 20}
	prev := healthy()
	prev.Time = t0.Add(-time.Second)
	setProcs(prev, append(slices.Clone(base), append([]snapshot.Process{parent}, many(20, 600, 500, "www-data", 33, "apache2", 60<<20)...)...))
	cur := healthy()
	setProcs(cur, append(slices.Clone(base), append([]snapshot.Process{parent}, many(60, 600, 500, "www-data", 33, "apache2", 60<<20)...)...))
	prev.Memory.VMStat = map[string]uint64{"pswpin": 100000, "pswpout": 200000, "pgmajfault": 500000}
	cur.Memory.VMStat = map[string]uint64{"pswpin": 104200, "pswpout": 206100, "pgmajfault": 515000}
	cur.Memory.PSI = map[string]snapshot.PSI{"memory": {SomeAvg10: 71.32, FullAvg10: 48.77, HasFull: true}}
	cur.Memory.MemAvailableBytes = 30 << 20
	f := run(t, MemoryThrashing{}, prev, cur)
	wantSeverity(t, f, Critical)
	v, ok := f.Evidence.Get("growing_groups")
	if !ok {
		t.Fatalf("no growing_groups: %v", f.Evidence)
	}
	g := v.(GrowthRows)
	if len(g) != 1 || g[0].Comm != "apache2" || g[0].User != "www-data" || *g[0].CountDelta != 40 ||
		*g[0].RSSDeltaBytes != 40*60<<20 || g[0].ParentPID != 500 || g[0].AvgRSSBytes != 60<<20 {
		t.Errorf("growing = %+v", g)
	}
	if !strings.Contains(f.Title, "www-data × apache2 grew +40 processes") {
		t.Errorf("title = %q", f.Title)
	}
	if !strings.Contains(f.Explanation, "grew fastest (+40 processes, +2.3 GiB over 1.0 s): 60 processes averaging 60.0 MiB resident") {
		t.Errorf("explanation does not name the growth: %s", f.Explanation)
	}
	if !slices.Contains(f.Fix, "ps -o pid,etime,rss,args --ppid 500 --sort=-rss | head -20   # the children of pid 500") ||
		!slices.Contains(f.Fix, services[1].fix[0]) {
		t.Errorf("fix = %q", f.Fix)
	}
	if r, _ := f.Evidence.Get("swap_in_pages_per_second"); r != 4200.0 {
		t.Errorf("swap in rate = %v", r)
	}
}

// TestMemoryThrashingOneSnapshotLargest: with one snapshot the largest
// groups stand in for the growing ones.
func TestMemoryThrashingOneSnapshotLargest(t *testing.T) {
	s := healthy()
	s.Memory.PSI = map[string]snapshot.PSI{"memory": {SomeAvg10: 60, FullAvg10: 30}}
	f := run(t, MemoryThrashing{}, nil, s)
	wantSeverity(t, f, Critical)
	v, ok := f.Evidence.Get("largest_groups")
	if !ok || v.(GrowthRows)[0].Comm != "systemd" || v.(GrowthRows)[0].CountDelta != nil {
		t.Errorf("largest = %v", v)
	}
}

// TestMemoryThrashingWithoutPSI: the thrashing web server on a kernel
// before 4.20 (or booted psi=0): the verdict comes from /proc/vmstat rates
// alone, with the pre-4.8 allocstall counter among them, and the finding
// says so in its title, evidence and explanation.
func TestMemoryThrashingWithoutPSI(t *testing.T) {
	cur, prev := healthy(), healthy()
	cur.Memory.PSI, prev.Memory.PSI = nil, nil
	prev.Time = cur.Time.Add(-2 * time.Second)
	prev.Memory.VMStat = map[string]uint64{"pswpin": 1000, "pswpout": 2000, "pgmajfault": 50000, "allocstall": 100}
	cur.Memory.VMStat = map[string]uint64{"pswpin": 9400, "pswpout": 14200, "pgmajfault": 80000, "allocstall": 160}
	f := run(t, MemoryThrashing{}, prev, cur)
	wantSeverity(t, f, Critical)
	if !strings.HasPrefix(f.Title, "thrashing: 4200 pages/s swapped in and 6100 out") || !strings.HasSuffix(f.Title, "(vmstat rates: no PSI)") {
		t.Errorf("title %q", f.Title)
	}
	for k, want := range map[string]any{"psi_available": false, "graded_by": "vmstat rates (no PSI)", "allocation_stalls_per_second": 30.0,
		"swap_in_pages_per_second": 4200.0, "major_faults_per_second": 15000.0} {
		if v, _ := f.Evidence.Get(k); v != want {
			t.Errorf("evidence %s = %v (%T), want %v", k, v, v, want)
		}
	}
	if !strings.Contains(f.Explanation, "This kernel has no PSI") || !strings.Contains(f.Explanation, "allocation stalls (30.0/s, direct reclaim)") {
		t.Errorf("explanation:\n%s", f.Explanation)
	}
	// Calm rates without PSI: ok, and the title says what it was graded by.
	cur.Memory.VMStat = map[string]uint64{"pswpin": 1000, "pswpout": 2000, "pgmajfault": 50010, "allocstall": 100}
	f = run(t, MemoryThrashing{}, prev, cur)
	wantSeverity(t, f, OK)
	if !strings.HasSuffix(f.Title, "(vmstat rates: no PSI)") {
		t.Errorf("calm title %q", f.Title)
	}
}
