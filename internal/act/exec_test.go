package act

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestExecHostile: a process named `$(touch FILE)` reaches the program as
// one argument and as PICKET_COMM, and nothing runs it through a shell.
func TestExecHostile(t *testing.T) {
	marker := filepath.Join(t.TempDir(), "pwned")
	hostile := "$(touch " + marker + ")"
	state := t.TempDir()
	r := newRunner(t, Options{StateDir: state})
	row := map[string]any{"comm": hostile, "user": "alice\nSubject: injected", "count": 120, "bad key!": "`touch " + marker + "`"}

	res := r.Do(t.Context(), Request{Spec: &ExecSpec{Argv: []string{"/usr/bin/printf", "[%s]", hostile, "; touch " + marker}}, Row: row, Rule: "r"})
	if res.Error != "" {
		t.Fatalf("exec: %+v", res)
	}
	var out string
	for _, e := range journalOf(t, state) {
		if e.ID == res.ID && e.Phase == PhaseResult {
			out = e.Output
		}
	}
	if want := "[" + hostile + "][; touch " + marker + "]"; out != want {
		t.Errorf("arguments arrived as %q, want %q", out, want)
	}

	res = r.Do(t.Context(), Request{Spec: &ExecSpec{Argv: []string{"/usr/bin/env"}}, Row: row, Host: "moscow", Rule: "ProcNumChkRed"})
	out = ""
	for _, e := range journalOf(t, state) {
		if e.ID == res.ID && e.Phase == PhaseResult {
			out = e.Output
		}
	}
	for _, want := range []string{"PICKET_COMM=" + hostile + "\n", "PICKET_USER=alice\nSubject: injected\n", "PICKET_COUNT=120\n",
		"PICKET_BAD_KEY_=`touch " + marker + "`\n", "PICKET_RULE=ProcNumChkRed\n", "PICKET_HOST=moscow\n", "PICKET_ID=" + res.ID + "\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("env lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "HOME=") || strings.Contains(out, "GOPATH") {
		t.Errorf("picket's own environment leaked:\n%s", out)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Fatal("the hostile value was executed")
	}
}

func TestExecTimeoutAndBoundedOutput(t *testing.T) {
	state := t.TempDir()
	r := newRunner(t, Options{StateDir: state})
	start := time.Now()
	res := r.Do(t.Context(), Request{Spec: &ExecSpec{Argv: []string{"/usr/bin/yes", "flood"}, Timeout: 300 * time.Millisecond}})
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("timeout took %v", took)
	}
	if !strings.Contains(res.Error, "timeout") {
		t.Errorf("result %+v", res)
	}
	for _, e := range journalOf(t, state) {
		if e.ID == res.ID && e.Phase == PhaseResult {
			if len(e.Output) > maxOutput+100 || !strings.Contains(e.Output, "more bytes not kept") {
				t.Errorf("output not bounded: %d bytes", len(e.Output))
			}
		}
	}
	res = r.Do(t.Context(), Request{Spec: &ExecSpec{Argv: []string{"/bin/false"}}})
	if res.Error == "" || !strings.Contains(res.Result, "exit status 1") {
		t.Errorf("failing program: %+v", res)
	}
	res = r.Do(t.Context(), Request{Spec: &ExecSpec{Argv: []string{"/bin/true"}}, DryRun: true})
	if res.ID != "" || !strings.HasPrefix(res.Result, "would run /bin/true") {
		t.Errorf("dry run: %+v", res)
	}
}
