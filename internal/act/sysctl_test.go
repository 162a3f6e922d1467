package act

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSysctlAndUndo(t *testing.T) {
	root := fixtureRoot(t)
	state := t.TempDir()
	r := newRunner(t, Options{Root: root, StateDir: state})
	file := filepath.Join(root, "proc/sys/net/ipv4/tcp_max_orphans")
	value := func() string { b, _ := os.ReadFile(file); return strings.TrimSpace(string(b)) }
	req := Request{Rule: "orphans", Spec: &SysctlSpec{Key: "net.ipv4.tcp_max_orphans", Value: "262144"}}

	dry := req
	dry.DryRun = true
	if res := r.Do(t.Context(), dry); res.Result != "would set net.ipv4.tcp_max_orphans from 65536 to 262144" || value() != "65536" {
		t.Errorf("dry run: %+v, value %s", res, value())
	}
	res := r.Do(t.Context(), req)
	if res.Error != "" || value() != "262144" {
		t.Fatalf("set: %+v, value %s", res, value())
	}
	es := journalOf(t, state)
	if es[0].Phase != PhaseIntent || es[0].Undo == nil || es[0].Undo.Old != "65536" || es[1].Phase != PhaseResult {
		t.Errorf("journal: %+v", es)
	}
	if res := r.Do(t.Context(), req); !strings.Contains(res.Result, "already") || res.ID != "" {
		t.Errorf("same value again: %+v", res)
	}

	u, err := r.Undo(t.Context(), res.ID)
	if err != nil || value() != "65536" {
		t.Fatalf("undo: %+v %v, value %s", u, err, value())
	}
	if _, err := r.Undo(t.Context(), res.ID); err == nil || !strings.Contains(err.Error(), "already reverted") {
		t.Errorf("second undo: %v", err)
	}
	for _, a := range Actions(journalOf(t, state), r.opts.Now()) {
		if a.ID == res.ID && a.State != StateReverted {
			t.Errorf("state after undo: %s", a.State)
		}
	}

	// Someone changed it after picket: undo leaves their value alone.
	res = r.Do(t.Context(), req)
	os.WriteFile(file, []byte("1024\n"), 0o644)
	if _, err := r.Undo(t.Context(), res.ID); err == nil || value() != "1024" {
		t.Errorf("undo over someone else's change: %v, value %s", err, value())
	}

	// Values with tabs compare field by field.
	if res := r.Do(t.Context(), Request{Spec: &SysctlSpec{Key: "net.ipv4.tcp_mem", Value: "1000 2000 3000"}}); !strings.Contains(res.Result, "already") {
		t.Errorf("tcp_mem: %+v", res)
	}
	if res := r.Do(t.Context(), Request{Spec: &SysctlSpec{Key: "net.ipv4.nope", Value: "1"}}); !strings.HasPrefix(res.Result, "refused") {
		t.Errorf("missing key: %+v", res)
	}
	if _, err := r.Undo(t.Context(), "nosuchid"); err == nil {
		t.Error("undo of an unknown id")
	}
}

// TestSysctlLiveDryRun reads a real /proc/sys value through the same
// beneath-the-root opening the write uses; nothing is written.
func TestSysctlLiveDryRun(t *testing.T) {
	r := newRunner(t, Options{DryRun: true})
	res := r.Do(t.Context(), Request{Spec: &SysctlSpec{Key: "kernel.pid_max", Value: "4194304"}})
	if !strings.HasPrefix(res.Result, "would set kernel.pid_max from ") && !strings.Contains(res.Result, "already") {
		t.Errorf("live dry run: %+v", res)
	}
}
