package doctor

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestCheckIDsAreTheContract(t *testing.T) {
	want := []string{"tcp-orphans", "tcp-memory", "beancounters", "other-sockets", "process-storm", "cgroup-limits", "memory-thrashing", "fd-exhaustion", "conntrack", "socket-leak", "exhaustion-forecast", "kernel-log"}
	cs := Checks()
	if len(cs) != len(want) {
		t.Fatalf("%d checks, want %d", len(cs), len(want))
	}
	for i, c := range cs {
		if c.ID() != want[i] {
			t.Errorf("check %d is %q, want %q", i, c.ID(), want[i])
		}
	}
}

func TestExitCodes(t *testing.T) {
	for _, tc := range []struct {
		s    Severity
		code int
		name string
	}{{OK, 0, "ok"}, {Warning, 1, "warning"}, {Critical, 2, "critical"}, {Unknown, 3, "unknown"}} {
		if tc.s.ExitCode() != tc.code || tc.s.String() != tc.name {
			t.Errorf("%v: exit %d name %q, want %d %q", tc.s, tc.s.ExitCode(), tc.s.String(), tc.code, tc.name)
		}
		var back Severity
		if err := back.UnmarshalText([]byte(tc.name)); err != nil || back != tc.s {
			t.Errorf("UnmarshalText(%q) = %v, %v", tc.name, back, err)
		}
	}
}

// fixed is a check that returns what it is told.
type fixed struct {
	id  string
	sev Severity
}

func (f fixed) ID() string        { return f.id }
func (f fixed) Run(Input) Finding { return Finding{Severity: f.sev, Title: f.id} }
func (panicky) ID() string        { return "panicky" }
func (panicky) Run(in Input) Finding {
	var m map[string]int
	//lint:ignore SA5000 the check panics on purpose, as a buggy one would
	m["x"]++
	return Finding{}
}
func checks(s ...Severity) []Check {
	out := make([]Check, len(s))
	for i, v := range s {
		out[i] = fixed{id: string(rune('a' + i)), sev: v}
	}
	return out
}

type panicky struct{}

// TestReportStatus: the worst finding wins, unknown only when nothing else
// is wrong; findings are sorted worst first with ties in check order.
func TestReportStatus(t *testing.T) {
	for _, tc := range []struct {
		name   string
		sevs   []Severity
		status Severity
		code   int
		order  string
	}{
		{"all ok", []Severity{OK, OK, OK}, OK, 0, "abc"},
		{"one warning", []Severity{OK, Warning, OK}, Warning, 1, "bac"},
		{"critical beats warning", []Severity{Warning, OK, Critical}, Critical, 2, "cab"},
		{"unknown alone", []Severity{OK, Unknown, OK}, Unknown, 3, "bac"},
		{"warning beats unknown", []Severity{Unknown, Warning}, Warning, 1, "ba"},
		{"critical beats unknown", []Severity{Unknown, OK, Critical}, Critical, 2, "cab"},
		{"ties keep check order", []Severity{Warning, Critical, Warning, Critical}, Critical, 2, "bdac"},
		{"no checks", nil, OK, 0, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := Run(Input{Cur: healthy()}, checks(tc.sevs...))
			if r.Status != tc.status || r.ExitCode() != tc.code {
				t.Errorf("status %s exit %d, want %s %d", r.Status, r.ExitCode(), tc.status, tc.code)
			}
			var order strings.Builder
			for _, f := range r.Findings {
				order.WriteString(f.ID)
			}
			if order.String() != tc.order {
				t.Errorf("order %q, want %q", order.String(), tc.order)
			}
		})
	}
}

func TestPanickingCheckIsUnknown(t *testing.T) {
	r := Run(Input{Cur: healthy()}, []Check{panicky{}, fixed{"ok", OK}})
	f, ok := r.Find("panicky")
	if !ok || f.Severity != Unknown || r.Status != Unknown || len(r.Findings) != 2 {
		t.Fatalf("report = %+v", r)
	}
}

func TestNoSnapshotIsUnknown(t *testing.T) {
	r := Run(Input{}, Checks())
	if r.Status != Unknown || len(r.Findings) != len(Checks()) {
		t.Errorf("status %s with %d findings", r.Status, len(r.Findings))
	}
}

// TestJSONShape: {"status", "findings": [{"id", "severity", "title",
// "evidence": {...}, "explanation", "fix": [...]}]}, evidence in order,
// empty fix and tables as [] (never null).
func TestJSONShape(t *testing.T) {
	r := Run(Input{Cur: healthy()}, Checks())
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(b, &top); err != nil {
		t.Fatal(err)
	}
	if len(top) != 2 || top["status"] == nil || top["findings"] == nil {
		t.Fatalf("top-level keys: %s", b)
	}
	var fs []map[string]json.RawMessage
	if err := json.Unmarshal(top["findings"], &fs); err != nil {
		t.Fatal(err)
	}
	for _, f := range fs {
		for _, k := range []string{"id", "severity", "title", "evidence", "explanation", "fix"} {
			if f[k] == nil {
				t.Errorf("finding %s lacks %q", f["id"], k)
			}
		}
		if len(f) != 6 {
			t.Errorf("finding %s has %d keys", f["id"], len(f))
		}
		if string(f["fix"]) == "null" || string(f["evidence"]) == "null" {
			t.Errorf("finding %s: null fix or evidence", f["id"])
		}
		if strings.Contains(string(f["evidence"]), "null]") || strings.Contains(string(f["evidence"]), ":null,\"top") {
			t.Errorf("finding %s: a null table: %s", f["id"], f["evidence"])
		}
	}
	if !strings.Contains(string(b), `"evidence":{"orphans":1,"tcp_max_orphans":65536,"orphans_x2":2,"orphans_x4":4,`) {
		t.Errorf("tcp-orphans evidence out of order: %s", b)
	}
	// And back: a report reads back with its evidence.
	var back Report
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	f, _ := back.Find("tcp-orphans")
	if v, _ := f.Evidence.Get("tcp_max_orphans"); v != json.Number("65536") {
		t.Errorf("read back tcp_max_orphans = %#v", v)
	}
}

func TestReadableCeil(t *testing.T) {
	for _, tc := range []struct{ in, want int64 }{
		{0, 0}, {7, 7}, {99, 99}, {100, 100}, {101, 110}, {86256, 87000}, {87000, 87000},
		{262144, 270000}, {1000001, 1100000}, {4 * 21564, 87000},
	} {
		if got := readableCeil(tc.in); got != tc.want {
			t.Errorf("readableCeil(%d) = %d, want %d", tc.in, got, tc.want)
		}
	}
}

func TestThresholdsValidate(t *testing.T) {
	if err := DefaultThresholds().Validate(); err != nil {
		t.Fatalf("defaults invalid: %v", err)
	}
	for name, mod := range map[string]func(*Thresholds){
		"warn above crit":    func(t *Thresholds) { t.LimitWarnPercent = 99 },
		"percent above 100":  func(t *Thresholds) { t.StormMinPercent = 150 },
		"negative count":     func(t *Thresholds) { t.StormMinCount = -1 },
		"psi order":          func(t *Thresholds) { t.PSIFullWarn = 30 },
		"swap order":         func(t *Thresholds) { t.SwapCritPages = 1 },
		"no rows":            func(t *Thresholds) { t.Top = 0 },
		"negative psi":       func(t *Thresholds) { t.PSISomeWarn = -1 },
		"majfault order":     func(t *Thresholds) { t.MajfaultWarn = 1e9 },
		"beancounter > 100%": func(t *Thresholds) { t.BeancounterWarnPercent = 101 },
	} {
		th := DefaultThresholds()
		mod(&th)
		if err := th.Validate(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// TestZeroThresholdsMeanDefaults: an Input without thresholds behaves as
// with the defaults (a caller that forgets them gets sane verdicts).
func TestZeroThresholdsMeanDefaults(t *testing.T) {
	s := healthy()
	s.Kernel.Sockstat.TCP.Orphan = 20000
	a := Run(Input{Cur: s}, Checks())
	b := Run(Input{Cur: s, Thresholds: DefaultThresholds()}, Checks())
	if a.Status != b.Status || a.Status != Warning {
		t.Errorf("zero thresholds: %s, defaults: %s", a.Status, b.Status)
	}
}

// FuzzEvidenceJSON: reading evidence back never panics, and what it reads
// marshals again to valid JSON with the same keys in the same order.
func FuzzEvidenceJSON(f *testing.F) {
	f.Add([]byte(`{"orphans":21564,"closing_states":{"FIN_WAIT1":3},"rows":[{"pid":1}],"x":null}`))
	f.Add([]byte(`{"a":1,"a":2}`))
	f.Add([]byte(`[1,2]`))
	f.Add([]byte(`{"a":`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var e Evidence
		if err := e.UnmarshalJSON(b); err != nil {
			return
		}
		out, err := e.MarshalJSON()
		if err != nil || !json.Valid(out) {
			t.Fatalf("read %q, wrote %q: %v", b, out, err)
		}
		var again Evidence
		if err := again.UnmarshalJSON(out); err != nil || len(again) != len(e) {
			t.Fatalf("round trip of %q: %v, %d keys, want %d", out, err, len(again), len(e))
		}
		for i := range e {
			if again[i].Key != e[i].Key {
				t.Fatalf("key %d: %q, want %q", i, again[i].Key, e[i].Key)
			}
		}
	})
}
