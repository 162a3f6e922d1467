package rules

import (
	"reflect"
	"testing"
	"time"

	"github.com/picket-guard/picket/internal/alarm"
	"github.com/picket-guard/picket/internal/snapshot"
)

// TestUnknownIsNotANumber: a process whose /proc/PID/fd picket could not
// read (fds -1 in the snapshot) and a kernel without PSI are not rows with
// 0 or -1 in them: a rule reading the unknown value skips the row, neither
// firing nor resolving it, and rules that do not read it are unaffected.
func TestUnknownIsNotANumber(t *testing.T) {
	cfg, err := loadString(t, `
rules:
  - name: fd-hog
    table: processes
    if: fds >= 100 || fds < 0
  - name: calm
    table: processes
    if: comm == "imapd"
  - name: stalls
    table: kernel
    if: psi_memory_some10 < 5 && mem_available < 1000000
  - name: low-memory
    table: kernel
    if: kernel.mem_available < 1000000
`)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_800_000_000, 0)
	e := NewEngine(cfg, cfg.Host("h"), EngineOptions{Now: func() time.Time { return now }, IgnoreHysteresis: true})
	start := now.Add(-time.Hour)
	snap := func(fds int, psi bool, avail string, availBytes uint64) *Input {
		s := &snapshot.Snapshot{Time: now}
		s.Processes.List = []snapshot.Process{{PID: 10, Comm: "imapd", FDs: fds, StartTime: start}}
		s.Memory.MemTotalBytes, s.Memory.MemAvailableBytes, s.Memory.MemAvailableSource = 8<<30, availBytes, avail
		if psi {
			s.Memory.PSI = map[string]snapshot.PSI{"memory": {SomeAvg10: 1}}
		}
		return &Input{Snapshot: s}
	}
	type state struct {
		rule   string
		status alarm.Status
	}
	eval := func(in *Input) []state {
		now = now.Add(time.Minute)
		evs, err := e.Evaluate(in, e.Rules())
		if err != nil {
			t.Fatalf("Evaluate: %v", err)
		}
		var out []state
		for _, ev := range evs {
			out = append(out, state{ev.Alarm.Rule, ev.Alarm.Status})
		}
		return out
	}
	if got, want := eval(snap(-1, false, snapshot.MemAvailableUnknown, 0)), []state{{"calm", alarm.Firing}}; !reflect.DeepEqual(got, want) {
		t.Errorf("unknown fds, no PSI, unknown MemAvailable: %v, want %v", got, want)
	}
	got := eval(snap(150, true, "", 500000))
	want := []state{{"fd-hog", alarm.Firing}, {"calm", alarm.Firing}, {"stalls", alarm.Firing}, {"low-memory", alarm.Firing}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("known values: %v, want %v", got, want)
	}
	// The values become unknown again: the alarms stay as they were (not
	// resolved on a value nobody could read).
	if got := eval(snap(-1, false, snapshot.MemAvailableUnknown, 0)); !reflect.DeepEqual(got, []state{{"calm", alarm.Firing}}) {
		t.Errorf("unknown again: %v", got)
	}
	if got := eval(snap(3, true, snapshot.MemAvailableZoneinfo, 4<<30)); !reflect.DeepEqual(got, []state{{"fd-hog", alarm.Resolved},
		{"calm", alarm.Firing}, {"stalls", alarm.Resolved}, {"low-memory", alarm.Resolved}}) {
		t.Errorf("known and clear (an estimate is a value): %v", got)
	}
}

func TestActionUses(t *testing.T) {
	cfg, err := loadString(t, `
macros:
  cure: {params: [U], do: [{kill: {user: "{{.U}}"}}, {archive: {path: /var/mail/x, to: /var/mail/arc, roots: [/var/mail]}}]}
rules:
  - name: b
    table: process_groups
    if: count > 10
    then: [{call: cure, args: {U: "{{.user}}"}}]
  - name: a
    table: process_groups
    if: count > 20
    then: [{kill: {comm: imapd}}]
  - name: off
    status: inactive
    table: process_groups
    then: [{archive: {path: /var/mail/y, to: /var/mail/arc, roots: [/var/mail]}}]
`)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := cfg.ActionUses(), map[string][]string{"kill": {"a", "b"}, "archive": {"b"}}; !reflect.DeepEqual(got, want) {
		t.Errorf("ActionUses = %v, want %v", got, want)
	}
}
