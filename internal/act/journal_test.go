package act

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestJournalFold(t *testing.T) {
	dir := t.TempDir()
	j, err := OpenJournal(dir)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 4, 28, 10, 0, 0, 0, time.UTC)
	add := func(e Entry) {
		t.Helper()
		if err := j.Append(e); err != nil {
			t.Fatal(err)
		}
	}
	add(Entry{ID: "k", Time: t0, Phase: PhaseIntent, Type: "kill", Rule: "storm", Targets: []any{1, 2}})
	add(Entry{ID: "k", Time: t0, Phase: PhaseResult, Type: "kill", Result: "killed 2"})
	add(Entry{ID: "t", Time: t0, Phase: PhaseIntent, Type: "throttle", Undo: &Undo{Proto: "tcp", Port: 80}, Until: t0.Add(10 * time.Minute)})
	add(Entry{ID: "t", Time: t0, Phase: PhaseResult, Type: "throttle", Result: "dropping"})
	add(Entry{ID: "s", Time: t0, Phase: PhaseIntent, Type: "sysctl", Undo: &Undo{Key: "k", Old: "1", New: "2"}})
	add(Entry{ID: "s", Time: t0, Phase: PhaseResult, Type: "sysctl", Result: "set"})
	add(Entry{ID: "s", Time: t0.Add(time.Minute), Phase: PhaseRevert, Type: "sysctl", Result: "undone"})
	add(Entry{ID: "f", Time: t0, Phase: PhaseIntent, Type: "freeze", Undo: &Undo{Method: "sigstop"}, Until: t0.Add(time.Minute)})
	add(Entry{ID: "r", Time: t0, Phase: PhaseRefused, Type: "kill", Result: "rate-limited"})
	j.Close()
	// A torn last line (a crash mid-write) is skipped and named.
	f, _ := os.OpenFile(filepath.Join(dir, JournalFile), os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(`{"id":"x","ti`)
	f.Close()

	es, err := ReadJournal(dir)
	if err == nil || !strings.Contains(err.Error(), "line 10") {
		t.Errorf("torn line: %v", err)
	}
	want := map[string]string{"k": StateDone, "t": StateActive, "s": StateReverted, "f": StateInFlight, "r": StateRefused}
	for _, a := range Actions(es, t0.Add(time.Second)) {
		if a.State != want[a.ID] {
			t.Errorf("%s: state %s, want %s", a.ID, a.State, want[a.ID])
		}
	}
	for _, a := range Actions(es, t0.Add(time.Hour)) {
		if a.ID == "t" && a.State != StateExpired {
			t.Errorf("throttle past its time: %s", a.State)
		}
	}
	if es, err := ReadJournal(t.TempDir()); es != nil || err != nil {
		t.Errorf("missing journal: %v %v", es, err)
	}
}

func TestJournalFileMode(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	j, err := OpenJournal(dir)
	if err != nil {
		t.Fatal(err)
	}
	j.Close()
	fi, err := os.Stat(filepath.Join(dir, JournalFile))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("journal mode %v %v", fi.Mode(), err)
	}
}
