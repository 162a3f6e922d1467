package doctor

import (
	"bytes"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/picket-guard/picket/internal/snapshot"
)

// TestRange: the guidelines' table of threshold ranges
// (https://www.monitoring-plugins.org/doc/guidelines.html#THRESHOLDFORMAT),
// parsed, applied and written back.
func TestRange(t *testing.T) {
	for _, tc := range []struct {
		in     string
		alerts []float64
		quiet  []float64
		out    string
	}{
		{"10", []float64{-1, 10.5, 11}, []float64{0, 5, 10}, "10"},
		{"10:", []float64{-5, 9.99}, []float64{10, 1e9}, "10:"},
		{"~:10", []float64{10.1, 11}, []float64{-1e9, 10}, "~:10"},
		{"10:20", []float64{9, 21}, []float64{10, 15, 20}, "10:20"},
		{"@10:20", []float64{10, 15, 20}, []float64{9.9, 20.1}, "@10:20"},
		{"@10:", []float64{10, 1e12}, []float64{9.5}, "@10:"},
		{"0", []float64{1, -1}, []float64{0}, "0"},
		{"-5:-1", []float64{0, -6}, []float64{-3}, "-5:-1"},
		{"1.5:2.25", []float64{1.4}, []float64{2}, "1.5:2.25"},
	} {
		r, err := ParseRange(tc.in)
		if err != nil {
			t.Errorf("%q: %v", tc.in, err)
			continue
		}
		for _, v := range tc.alerts {
			if !r.Alert(v) {
				t.Errorf("%q: %g does not alert", tc.in, v)
			}
		}
		for _, v := range tc.quiet {
			if r.Alert(v) {
				t.Errorf("%q: %g alerts", tc.in, v)
			}
		}
		if r.String() != tc.out {
			t.Errorf("%q written back as %q, want %q", tc.in, r.String(), tc.out)
		}
	}
	for _, bad := range []string{"", "@", "20:10", "abc", "1e3", "0x10", "inf", "10:nan", "~:~"} {
		if _, err := ParseRange(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

func TestPerfNumberAndLabel(t *testing.T) {
	for v, want := range map[float64]string{0: "0", 21564: "21564", 91.42857: "91.429", 1e20: "100000000000000000000", -0.0001: "0", 0.5: "0.5",
		9223372036854775807: "9223372036854776000"} {
		if got := perfNumber(v); got != want {
			t.Errorf("perfNumber(%g) = %q, want %q", v, got, want)
		}
	}
	if got := perfLabel("a'b=c|d\ne f"); got != "'a_b_c_d_e f'" {
		t.Errorf("perfLabel = %s", got)
	}
	m := Metric{Label: "orphans", Value: 21564, Warn: above(16384), Crit: above(65536), Min: bound(0), Max: bound(65536)}
	if got := m.Perfdata(); got != "'orphans'=21564;16384;65536;0;65536" {
		t.Errorf("perfdata %s", got)
	}
	if got := (Metric{Label: "x", Value: 1.5, UOM: "%"}).Perfdata(); got != "'x'=1.5%" {
		t.Errorf("trailing fields not dropped: %s", got)
	}
	if got := (Metric{Label: "x", Value: 1, Max: bound(2)}).Perfdata(); got != "'x'=1;;;;2" {
		t.Errorf("inner empty fields: %s", got)
	}
}

// TestCountAtLeast: the whole-count threshold agrees with the comparison it
// stands for, at the boundary and in floating point's blind spots.
func TestCountAtLeast(t *testing.T) {
	th := DefaultThresholds()
	for _, limit := range []int64{1, 3, 7, 10, 100, 1000, 4096, 65536, 65537, 262144, 4194304, 1<<40 + 3} {
		warn, crit := limitRanges(limit, th)
		for _, used := range []int64{0, 1, limit * 8 / 10, limit*8/10 - 1, limit*8/10 + 1, limit * 95 / 100, limit*95/100 + 1, limit*95/100 - 1, limit, limit + 1} {
			if used < 0 {
				continue
			}
			level := limitLevel(used, limit, th)
			graded := Grade([]Metric{{Value: float64(used), Warn: warn, Crit: crit}})
			if level != graded {
				t.Errorf("limit %d used %d: limitLevel %s, ranges %s/%s grade %s", limit, used, level, warn, crit, graded)
			}
		}
	}
	if r := countAtLeast(0, func(int64) bool { return true }); !r.Alert(0) {
		t.Errorf("always-true threshold %s does not alert at 0", r)
	}
}

// thresholdSets are the defaults and a set tight enough that most checks
// alert on the fixtures, so both sides of every range are exercised.
func thresholdSets() map[string]Thresholds {
	tight := DefaultThresholds()
	tight.LimitWarnPercent, tight.LimitCritPercent = 0.5, 1
	tight.BeancounterWarnPercent = 1
	tight.StormMinCount, tight.StormMinPercent = 2, 1
	tight.HolderMinSockets, tight.HolderMinPercent = 1, 1
	tight.PSISomeWarn, tight.PSISomeCrit, tight.PSIFullWarn, tight.PSIFullCrit = 0.1, 1, 0.1, 0.2
	tight.SwapWarnPages, tight.SwapCritPages = 1, 5000
	tight.MajfaultWarn, tight.MajfaultCrit = 1, 10
	mid := DefaultThresholds()
	mid.LimitWarnPercent, mid.LimitCritPercent = 10, 12
	mid.StormMinCount, mid.StormMinPercent = 6, 30
	mid.HolderMinSockets, mid.HolderMinPercent = 100, 25
	return map[string]Thresholds{"default": DefaultThresholds(), "tight": tight, "mid": mid}
}

// everyFixture is every input the tests of doctor and cmd/picket read: the
// story trees, the moscow tree, and the saved snapshots.
func everyFixture(t *testing.T) map[string]Input {
	t.Helper()
	out := map[string]Input{}
	trees, _ := filepath.Glob(filepath.Join(fixtures, "*"))
	if len(trees) < 6 {
		t.Fatalf("fixture trees: %v", trees)
	}
	for _, dir := range trees {
		name := filepath.Base(dir)
		out[name] = fixtureInput(t, name)
		if _, err := os.Stat(filepath.Join(dir, "after")); err == nil {
			out[name+"/after"] = fixtureInput(t, name+"/after")
		}
	}
	out["moscow"] = Input{Cur: collectAt(t, "../../testdata/fixtures/moscow", btime.Add(time.Hour))}
	snaps, err := filepath.Glob("../../testdata/snapshots/*.json")
	if err != nil || len(snaps) == 0 {
		t.Fatalf("no saved snapshots: %v", err)
	}
	for _, p := range snaps {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		var s snapshot.Snapshot
		if err := json.Unmarshal(b, &s); err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		out["snapshot "+filepath.Base(p)] = Input{Cur: &s}
	}
	// socket-leak only speaks with history: the moscow tree with a
	// history in which pid 42 leaks.
	leak := collectAt(t, "../../testdata/fixtures/moscow", btime.Add(time.Hour))
	leak.Sockets.Processes = append(leak.Sockets.Processes, snapshot.Holder{PID: 42, User: "app", Comm: "leaky",
		SocketCounts: snapshot.SocketCounts{Unix: 400}, Total: 400, FDs: 410, FDLimit: 1024})
	out["moscow with a leak in history"] = Input{Cur: leak, History: fakeGrowth{}}
	return out
}

// TestMetricsGradeLikeTheVerdict: on every fixture, with every threshold
// set, the metrics' ranges give the finding's own severity, so the
// performance data's thresholds are the ones that decided, and overriding
// one grades as the check would. Labels are unique and every finding that
// read its numbers carries some.
func TestMetricsGradeLikeTheVerdict(t *testing.T) {
	// Findings that legitimately have no numbers: no such limit here.
	noNumbers := map[string]bool{"not an OpenVZ/Virtuozzo container": true, "nf_conntrack not loaded": true, "needs history": true,
		"no cgroup hierarchy mounted": true}
	for fname, in := range everyFixture(t) {
		for tname, th := range thresholdSets() {
			in.Thresholds = th
			for _, f := range Run(in, Checks()).Findings {
				where := fname + " / " + tname + " / " + f.ID
				seen := map[string]bool{}
				for _, m := range f.Metrics {
					if seen[m.Label] || m.Label == "" {
						t.Errorf("%s: label %q empty or repeated", where, m.Label)
					}
					seen[m.Label] = true
					if math.IsNaN(m.Value) || math.IsInf(m.Value, 0) {
						t.Errorf("%s: %s = %g", where, m.Label, m.Value)
					}
				}
				if f.Severity == Unknown {
					continue
				}
				if g := Grade(f.Metrics); g != f.Severity {
					t.Errorf("%s: %s, but its metrics grade %s: %s\n%s", where, f.Severity, g, f.Title, Perfdata(f.Metrics))
				}
				if len(f.Metrics) == 0 {
					quiet := false
					for k := range noNumbers {
						quiet = quiet || strings.Contains(f.Title, k)
					}
					if !quiet {
						t.Errorf("%s: no metrics: %s", where, f.Title)
					}
				}
			}
		}
	}
}

func TestWithOverrides(t *testing.T) {
	// The orphan numbers alone: the story's kernel log would warn
	// whatever the orphans' thresholds (TestKernelLogMetrics).
	in := fixtureInput(t, "tcp-orphans")
	in.Cur.KernelLog = nil
	f, _ := Run(in, Checks()).Find("tcp-orphans")
	if f.Severity != Warning {
		t.Fatalf("tcp-orphans %s", f.Severity)
	}
	crit := func(label, r string) Overrides {
		rg, err := ParseRange(r)
		if err != nil {
			t.Fatal(err)
		}
		return Overrides{Crit: map[string]Range{label: rg}}
	}
	g, err := WithOverrides(f, crit("", "20000"))
	if err != nil || g.Severity != Critical || !strings.Contains(g.Title, "[orphans 21564 outside critical 20000]") ||
		!strings.Contains(Perfdata(g.Metrics), "'orphans'=21564;16384;20000;0;65536") {
		t.Errorf("--critical 20000: %v %s %s | %s", err, g.Severity, g.Title, Perfdata(g.Metrics))
	}
	if f.Metrics[0].Crit.String() != "65536" {
		t.Errorf("the finding's own metrics were changed: %s", f.Metrics[0].Crit)
	}
	// A warning level above the count: ok, and the title says why.
	w, _ := ParseRange("100000")
	g, err = WithOverrides(f, Overrides{Warn: map[string]Range{"orphans": w}})
	if err != nil || g.Severity != OK || !strings.Contains(g.Title, "within the thresholds given") {
		t.Errorf("--warning orphans=100000: %v %s %s", err, g.Severity, g.Title)
	}
	if _, err := WithOverrides(f, crit("sockets", "1")); err == nil || !strings.Contains(err.Error(), "orphans, orphans_x2") {
		t.Errorf("unknown label: %v", err)
	}
	u := unknownFinding("x", "y", Evidence{})
	u.ID = "tcp-orphans"
	if g, err := WithOverrides(u, crit("", "1")); err == nil || g.Severity != Unknown {
		t.Errorf("an unknown finding without metrics: %v %s", err, g.Severity)
	}
}

func TestWritePlugin(t *testing.T) {
	f := Finding{ID: "process-storm", Severity: Warning, Title: "64 im|apd processes\nof alice",
		Explanation: "para one | two\n\npara three", Fix: []string{"ps -fu 1001 | head"},
		Metrics: []Metric{{Label: "largest_group", Value: 64, Warn: above(49), Min: bound(0), Max: bound(77)}}}
	var b bytes.Buffer
	if err := WritePlugin(&b, f, []string{"could not read psi: x|y"}); err != nil {
		t.Fatal(err)
	}
	want := "PICKET PROCESS-STORM WARNING - 64 im¦apd processes of alice | 'largest_group'=64;49;;0;77\n" +
		"para one ¦ two\n\npara three\n\nFix:\n  ps -fu 1001 ¦ head\ncould not read psi: x¦y\n"
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
	b.Reset()
	PluginError(&b, "", "bad | flag")
	if b.String() != "PICKET UNKNOWN - bad ¦ flag\n" {
		t.Errorf("error line %q", b.String())
	}
}
