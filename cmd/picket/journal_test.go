package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/picket-guard/picket/internal/act"
	"github.com/picket-guard/picket/internal/testkit"
)

// TestJournalAndUndo: a sysctl set on a fixture root shows in picket
// journal as active, picket undo puts the old value back, and the journal
// then shows it reverted.
func TestJournalAndUndo(t *testing.T) {
	root := t.TempDir()
	state := t.TempDir()
	file := filepath.Join(root, "proc/sys/net/ipv4/tcp_max_orphans")
	os.MkdirAll(filepath.Dir(file), 0o755)
	os.WriteFile(file, []byte("65536\n"), 0o644)

	out, _, code := runCLI(t, "journal", "--state-dir", state)
	if code != 0 || !strings.Contains(out, "no actions journaled") {
		t.Errorf("empty journal: %d %q", code, out)
	}

	r, err := act.NewRunner(act.Options{Root: root, StateDir: state})
	if err != nil {
		t.Fatal(err)
	}
	res := r.Do(context.Background(), act.Request{Rule: "orphans\x1b[2J", Spec: &act.SysctlSpec{Key: "net.ipv4.tcp_max_orphans", Value: "262144"}})
	r.Close()
	if res.Error != "" {
		t.Fatal(res.Error)
	}

	out, _, code = runCLI(t, "journal", "--state-dir", state)
	if code != 0 || !strings.Contains(out, res.ID) || !strings.Contains(out, "active") || !strings.Contains(out, "set net.ipv4.tcp_max_orphans from 65536 to 262144") {
		t.Errorf("journal: %d\n%s", code, out)
	}
	if strings.Contains(out, "\x1b") {
		t.Errorf("a rule name reached the terminal unescaped:\n%q", out)
	}

	if _, errOut, code := runCLI(t, "undo", "--state-dir", state); code != 2 || !strings.Contains(errOut, "which action") {
		t.Errorf("undo without an id: %d %q", code, errOut)
	}
	if _, _, code := runCLI(t, "undo", "nosuchid", "--state-dir", state, "--root", root); code != 1 {
		t.Errorf("undo of an unknown id: %d", code)
	}
	out, errOut, code := runCLI(t, "undo", res.ID, "--state-dir", state, "--root", root)
	if code != 0 || !strings.Contains(out, "restored net.ipv4.tcp_max_orphans from 262144 to 65536") {
		t.Errorf("undo: %d %q %q", code, out, errOut)
	}
	if b, _ := os.ReadFile(file); strings.TrimSpace(string(b)) != "65536" {
		t.Errorf("value after undo: %q", b)
	}
	if _, errOut, code := runCLI(t, "undo", "--state-dir", state, "--root", root, res.ID); code != 1 || !strings.Contains(errOut, "already reverted") {
		t.Errorf("second undo: %d %q", code, errOut)
	}

	out, _, code = runCLI(t, "journal", "--json", "--state-dir", state)
	var actions []act.Action
	if err := json.Unmarshal([]byte(out), &actions); err != nil || code != 0 {
		t.Fatalf("journal --json: %v\n%s", err, out)
	}
	if len(actions) != 1 || actions[0].State != act.StateReverted || actions[0].Undo == nil || actions[0].Undo.Old != "65536" {
		t.Errorf("journal --json: %+v", actions)
	}
}

// TestJournalSaysWhoWasKilled: picket journal names the processes a kill
// hit by command and user, and --json carries each one's identity and the
// selector.
func TestJournalSaysWhoWasKilled(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: starts processes as nobody and kills them")
	}
	cmds := testkit.Sleepers(t, "pkt-jwho", 3, &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}})
	state := t.TempDir()
	r, err := act.NewRunner(act.Options{StateDir: state})
	if err != nil {
		t.Fatal(err)
	}
	res := r.Do(context.Background(), act.Request{Rule: "imapd-storm", Spec: &act.KillSpec{Comm: "pkt-jwho", User: "nobody", Signal: "KILL"}})
	r.Close()
	if res.Error != "" {
		t.Fatal(res.Result)
	}
	out, _, code := runCLI(t, "journal", "--state-dir", state)
	if code != 0 || !strings.Contains(out, "killed 3 pkt-jwho of nobody (KILL)") {
		t.Errorf("journal: %d\n%s", code, out)
	}
	out, _, _ = runCLI(t, "journal", "--json", "--state-dir", state)
	var actions []act.Action
	if err := json.Unmarshal([]byte(out), &actions); err != nil || len(actions) != 1 {
		t.Fatalf("journal --json: %v\n%s", err, out)
	}
	a := actions[0]
	var spec map[string]any
	json.Unmarshal(a.Spec, &spec)
	if spec["comm"] != "pkt-jwho" || spec["user"] != "nobody" || len(a.Procs) != 3 {
		t.Fatalf("journal --json: spec %s, procs %+v", a.Spec, a.Procs)
	}
	pids := map[int]bool{}
	for _, c := range cmds {
		pids[c.Process.Pid] = true
	}
	for _, p := range a.Procs {
		if !pids[p.PID] || p.User != "nobody" || p.Comm != "pkt-jwho" || p.Start.IsZero() || !strings.HasSuffix(p.Cmdline, "pkt-jwho 600") {
			t.Errorf("target %+v", p)
		}
	}
}
