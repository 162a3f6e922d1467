package rules

import (
	"testing"
	"time"

	"github.com/picket-guard/picket/internal/snapshot"
)

// TestRowsWithoutValues: what a table's row says when the snapshot has no
// value: a kind never seen is age -1, a message without an order or a uid
// is -1 there, a message from before picket's restart is an earlier run's;
// a process with no fds open has 0 (known), a process group's share of an
// empty table is 0.
func TestRowsWithoutValues(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	order, uid := 3, uint32(1000)
	s := &snapshot.Snapshot{Time: now, KernelLog: &snapshot.KernelLog{Available: true, ResumedSeq: 20, Kinds: []snapshot.KernelKind{
		{Kind: "fork-rejected"},
		{Kind: "oom-kill", Count: 2, Last: now.Add(-time.Minute), Recent: []snapshot.KernelMessage{
			{Seq: 19, Kind: "oom-kill", Time: now.Add(-2 * time.Minute)},
			{Seq: 20, Kind: "oom-kill", Time: now.Add(-time.Minute), Fields: snapshot.KernelFields{Order: &order, UID: &uid}},
		}},
	}}}
	kinds := tables()["kernel_log"].rows(&Input{Snapshot: s})
	if len(kinds) != 2 || kinds[0]["age"] != -1.0 || kinds[1]["age"] != 60.0 {
		t.Errorf("kernel_log rows %v: a kind never seen is age -1", kinds)
	}
	msgs := tables()["kernel_messages"].rows(&Input{Snapshot: s})
	if len(msgs) != 2 {
		t.Fatalf("kernel_messages rows %v", msgs)
	}
	if m := msgs[0]; m["order"] != -1 || m["uid"] != -1 || m["earlier_run"] != true || m["age"] != 120.0 {
		t.Errorf("message 19 (before the restart at 20, no order, no uid): %v", m)
	}
	if m := msgs[1]; m["order"] != 3 || m["uid"] != 1000 || m["earlier_run"] != false {
		t.Errorf("message 20: %v", m)
	}
	ps := &snapshot.Snapshot{Time: now}
	ps.Processes.List = []snapshot.Process{{PID: 10, Comm: "idle", FDs: 0}, {PID: 11, Comm: "hidden", FDs: -1}}
	rows := tables()["processes"].rows(&Input{Snapshot: ps})
	if len(rows) != 2 || rows[0]["fds"] != 0 || rows[1]["fds"] != nil {
		t.Errorf("processes rows %v: 0 fds is known, -1 is not", rows)
	}
	gs := &snapshot.Snapshot{Time: now}
	gs.Processes.Groups = []snapshot.Group{{User: "a", Comm: "x", Count: 3}}
	if rows := tables()["process_groups"].rows(&Input{Snapshot: gs}); len(rows) != 1 || rows[0]["share"] != 0.0 {
		t.Errorf("process_groups of a snapshot without a total: %v", rows)
	}
	gs.Processes.Total = 12
	if rows := tables()["process_groups"].rows(&Input{Snapshot: gs}); rows[0]["share"] != 0.25 {
		t.Errorf("3 of 12: share %v", rows[0]["share"])
	}
}

// TestSeverityRank: findings' severities in order, so `rank >= 2` is
// warning or worse.
func TestSeverityRank(t *testing.T) {
	for s, want := range map[string]int{"ok": 0, "unknown": 1, "warning": 2, "critical": 3, "": 0, "bogus": 0} {
		if got := severityRank(s); got != want {
			t.Errorf("severityRank(%q) = %d, want %d", s, got, want)
		}
	}
}
