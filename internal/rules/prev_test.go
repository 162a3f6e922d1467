package rules

import (
	"fmt"
	"testing"

	"github.com/picket-guard/picket/internal/snapshot"
)

// TestPrevKeepsOnlyWhatIsRead: of a previous evaluation's rows a rule keeps
// only the fields it reads as prev.F or rising.F, nothing when it reads
// neither, and whole rows when a template may name any of them. On a host
// of 100,000 processes the whole rows were hundreds of megabytes.
func TestPrevKeepsOnlyWhatIsRead(t *testing.T) {
	cfg, err := loadString(t, `
rules:
  - name: plain
    table: socket_holders
    if: total > 1000
    then: [{log: {stderr: true}}]
  - name: leak
    table: socket_holders
    if: rising.total >= 3 && fds > prev.fds
    then: [{log: {stderr: true}}]
`)
	if err != nil {
		t.Fatal(err)
	}
	said, err := loadString(t, `
rules:
  - name: said
    table: socket_holders
    message: "{{.comm}} holds {{.total}}, up from {{.prev.total}}"
    if: total > 1000
    then: [{log: {stderr: true}}]
`)
	if err != nil {
		t.Fatal(err)
	}
	run := func(e *Engine, names ...string) {
		t.Helper()
		var rules []*Rule
		for _, r := range e.Rules() {
			for _, n := range names {
				if r.Name == n {
					rules = append(rules, r)
				}
			}
		}
		for round := range 2 {
			s := &snapshot.Snapshot{}
			for pid := range 500 {
				s.Sockets.Processes = append(s.Sockets.Processes, snapshot.Holder{PID: pid, Comm: fmt.Sprint("c", pid%7), UID: 1000,
					SocketCounts: snapshot.SocketCounts{TCP: pid + round}, Total: pid + round, FDs: pid + 3 + round})
			}
			if _, err := e.Evaluate(&Input{Snapshot: s}, rules); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Without the templating rule: compact.
	e := NewEngine(cfg, cfg.Host("h"), EngineOptions{IgnoreHysteresis: true})
	run(e, "plain", "leak")
	if n := len(e.prev["plain"]) + len(e.rise["plain"]); n != 0 {
		t.Errorf("plain keeps %d rows: it reads no prev", n)
	}
	if len(e.prev["leak"]) != 500 {
		t.Fatalf("leak keeps %d rows, want 500", len(e.prev["leak"]))
	}
	for key, row := range e.prev["leak"] {
		if len(row) != 2 || row["fds"] == nil || row["total"] == nil {
			t.Fatalf("leak keeps %s as %v: want only fds and total", key, row)
		}
	}
	for key, r := range e.rise["leak"] {
		if len(r) != 1 || r["total"] != 1 {
			t.Fatalf("leak keeps the streaks of %s as %v: want total's only", key, r)
		}
	}
	// A template that names prev: whole rows, as it may read any field.
	e = NewEngine(said, said.Host("h"), EngineOptions{IgnoreHysteresis: true})
	run(e, "said")
	if len(e.prev["said"]) != 500 {
		t.Fatalf("said keeps %d rows", len(e.prev["said"]))
	}
	for _, row := range e.prev["said"] {
		if row["comm"] == nil || row["fds"] == nil || row["total"] == nil {
			t.Fatalf("said keeps %v: a template may read any prev field", row)
		}
		break
	}
}
