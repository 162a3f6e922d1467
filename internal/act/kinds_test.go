package act

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"
)

// TestKindTable: every kind's spec names it, the table is sorted without
// duplicates, a timed kind can be reverted, and the properties the rest of
// picket reads are the ones each kind has always had.
func TestKindTable(t *testing.T) {
	ks := kinds()
	var names []string
	for _, k := range ks {
		names = append(names, k.name)
		if k.spec == nil || k.do == nil {
			t.Errorf("%s: no spec or no do", k.name)
			continue
		}
		if got := k.spec().Kind(); got != k.name {
			t.Errorf("%s: its spec's Kind() is %q", k.name, got)
		}
		if a, b := k.spec(), k.spec(); a == b {
			t.Errorf("%s: spec() returns the same value twice", k.name)
		}
		if k.timed && k.revert == nil {
			t.Errorf("%s: timed but cannot be reverted", k.name)
		}
	}
	if !sort.StringsAreSorted(names) {
		t.Errorf("kinds not sorted: %v", names)
	}
	for i := 1; i < len(names); i++ {
		if names[i] == names[i-1] {
			t.Errorf("kind %s twice", names[i])
		}
	}
	for _, c := range []struct {
		kind            string
		undoable, timed bool
	}{
		{"archive", false, false}, {"exec", false, false}, {"freeze", true, true},
		{"kill", false, false}, {"sysctl", true, false}, {"throttle", true, true}, {"reboot", false, false},
	} {
		if Undoable(c.kind) != c.undoable || Timed(c.kind) != c.timed {
			t.Errorf("%s: undoable %v timed %v, want %v %v", c.kind, Undoable(c.kind), Timed(c.kind), c.undoable, c.timed)
		}
	}
}

// posingSpec claims a known kind's name without being its spec.
type posingSpec struct{ PID string }

func (*posingSpec) Kind() string    { return "kill" }
func (*posingSpec) Validate() error { return nil }

// TestForeignSpecRefused: a Spec type no kind made is refused by name and
// by type, never run as the kind it claims to be.
func TestForeignSpecRefused(t *testing.T) {
	r := newRunner(t, Options{Root: fixtureRoot(t)})
	res := r.Do(context.Background(), Request{Spec: &posingSpec{PID: "1"}, Rule: "r"})
	if res.Error == "" || res.ID != "" {
		t.Errorf("a posing spec was taken: %+v", res)
	}
}

// holdSpec is a test kind: it creates a file and removes it after For.
type holdSpec struct {
	Path string        `yaml:"path" json:"path"`
	For  time.Duration `yaml:"for" json:"for"`
}

func (*holdSpec) Kind() string { return "hold" }
func (s *holdSpec) Validate() error {
	if s.Path == "" || s.For <= 0 {
		return errors.New("hold: path and for are required")
	}
	return nil
}

func doHold(r *Runner, _ context.Context, o *op, s *holdSpec) {
	if o.dry() {
		o.res.Result = "would hold " + s.Path
		return
	}
	until := r.opts.Now().Add(s.For)
	if !o.intent([]any{s.Path}, &Undo{Key: s.Path}, until) {
		return
	}
	if err := os.WriteFile(s.Path, nil, 0o600); err != nil {
		o.finish("failed", err, "")
		return
	}
	o.finish("holding "+s.Path, nil, "")
	r.arm(o.id, until)
}

func releaseHold(_ *Runner, a Action) (string, error) {
	return "released " + a.Undo.Key, os.Remove(a.Undo.Key)
}

// holdKind is what a new timed, undoable kind adds: one descriptor.
var holdKind = kind{name: "hold", spec: func() Spec { return &holdSpec{} }, do: doing(doHold), revert: releaseHold, timed: true}

func holdRunner(t *testing.T, opts Options) *Runner {
	t.Helper()
	r := newRunner(t, opts)
	r.kinds = append(r.kinds, holdKind)
	return r
}

func holdState(t *testing.T, r *Runner, id string) string {
	t.Helper()
	a, err := r.action(id)
	if err != nil {
		t.Fatal(err)
	}
	return a.State
}

// TestNewTimedKind: a kind known only by its descriptor is journaled as
// active, ended by its timer, waited for, undone, and reverted or re-armed
// at restart — none of which names it.
func TestNewTimedKind(t *testing.T) {
	ctx := context.Background()
	root := fixtureRoot(t)
	state := t.TempDir()
	file := filepath.Join(t.TempDir(), "held")
	exists := func() bool { _, err := os.Stat(file); return err == nil }

	// Ends by itself; Wait waits for it.
	r := holdRunner(t, Options{Root: root, StateDir: state})
	res := r.Do(ctx, Request{Spec: &holdSpec{Path: file, For: 200 * time.Millisecond}, Rule: "r"})
	if res.Error != "" || res.ID == "" || !exists() {
		t.Fatalf("hold: %+v", res)
	}
	if s := holdState(t, r, res.ID); s != StateActive {
		t.Errorf("state while held: %s", s)
	}
	if err := r.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	if exists() || holdState(t, r, res.ID) != StateReverted {
		t.Errorf("not released after its time: file %v, state %s", exists(), holdState(t, r, res.ID))
	}

	// Undone before its time.
	res = r.Do(ctx, Request{Spec: &holdSpec{Path: file, For: time.Hour}, Rule: "r"})
	if _, err := r.Undo(ctx, res.ID); err != nil || exists() {
		t.Fatalf("undo: %v (file still there: %v)", err, exists())
	}

	// A crash while held: the next Runner re-arms it, or with
	// RevertOnRecover reverts it at once.
	for _, revert := range []bool{false, true} {
		r1 := holdRunner(t, Options{Root: root, StateDir: state})
		res := r1.Do(ctx, Request{Spec: &holdSpec{Path: file, For: 300 * time.Millisecond}, Rule: "r"})
		r1.disarm(res.ID) // as if picket died: nothing ends it
		r1.Close()
		if !exists() {
			t.Fatal("Close ended a disarmed hold")
		}
		r2 := holdRunner(t, Options{Root: root, StateDir: state, RevertOnRecover: revert})
		if err := r2.Recover(ctx); err != nil {
			t.Fatal(err)
		}
		if revert {
			if exists() || holdState(t, r2, res.ID) != StateReverted {
				t.Errorf("RevertOnRecover: file %v, state %s", exists(), holdState(t, r2, res.ID))
			}
			continue
		}
		if !exists() || holdState(t, r2, res.ID) != StateActive {
			t.Errorf("re-armed: file %v, state %s", exists(), holdState(t, r2, res.ID))
		}
		r2.Wait(ctx)
		if exists() {
			t.Error("re-armed hold not released at its time")
		}
	}
}
