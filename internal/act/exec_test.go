package act

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/picket-guard/picket/internal/testkit"
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

// TestExecOptionLikeValue: a process named "--version" reaching ls through
// a placeholder that begins an argument would be read as ls's option; the
// action is refused, and with "--" before the placeholder the name reaches
// ls as a file name.
func TestExecOptionLikeValue(t *testing.T) {
	state := t.TempDir()
	r := newRunner(t, Options{StateDir: state})
	rendered := func(argv []string, comm string) *ExecSpec {
		s := &ExecSpec{Argv: argv}
		s.MarkTemplates() // as the rules engine does before rendering
		for i, a := range s.Argv {
			s.Argv[i] = strings.ReplaceAll(a, "{{.comm}}", comm)
		}
		return s
	}
	output := func(id string) string {
		for _, e := range journalOf(t, state) {
			if e.ID == id && e.Phase == PhaseResult {
				return e.Output
			}
		}
		return ""
	}
	for _, comm := range []string{"--version", "-f/etc/shadow"} {
		res := r.Do(t.Context(), Request{Spec: rendered([]string{"/bin/ls", "{{.comm}}"}, comm), Rendered: true})
		if !strings.Contains(res.Error, "read it as an option") || res.ID != "" {
			t.Errorf("%s as ls's first argument: %+v (output %q)", comm, res, output(res.ID))
		}
	}
	res := r.Do(t.Context(), Request{Spec: rendered([]string{"/bin/ls", "--", "{{.comm}}"}, "--version"), Rendered: true})
	if out := output(res.ID); !strings.Contains(out, "--version") || !strings.Contains(out, "No such file") {
		t.Errorf("after --: %+v, output %q (want ls looking for a file named --version)", res, out)
	}
	// Options written in the configuration, and a placeholder inside an
	// argument, are the administrator's: they run.
	res = r.Do(t.Context(), Request{Spec: rendered([]string{"/usr/bin/printf", "-v", "x", "--user={{.comm}}"}, "-x"), Rendered: true})
	if res.Error != "" {
		t.Errorf("configured option and an inner placeholder: %+v", res)
	}
}

// TestExecChildDropsPrivileges: a picket with oom_score_adj raised, its fd
// limit at the hard limit and an ambient capability (setpriv, as a unit's
// AmbientCapabilities= gives) runs cat on the child's own /proc files:
// the child has none of the three.
func TestExecChildDropsPrivileges(t *testing.T) {
	needRoot(t, "gives the helper an ambient capability")
	setpriv := testkit.Need(t, "setpriv", "util-linux")
	cmd := exec.Command(setpriv, "--inh-caps", "+net_raw", "--ambient-caps", "+net_raw", os.Args[0])
	cmd.Env = append(os.Environ(), testkit.HelperEnv("execstatus"), "PICKET_ACT_STATE="+t.TempDir())
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("helper: %v\n%s", err, out)
	}
	s := string(out)
	field := func(name string) string {
		for _, l := range strings.Split(s, "\n") {
			if v, ok := strings.CutPrefix(l, name); ok {
				return strings.TrimSpace(v)
			}
		}
		return "(missing)"
	}
	if field("parent CapAmb:") == "0000000000000000" || field("parent oom_score_adj:") != "300" {
		t.Fatalf("the helper did not get its privileges:\n%s", s)
	}
	if v := field("CapAmb:"); v != "0000000000000000" {
		t.Errorf("child CapAmb %s, want none", v)
	}
	if v := field("CapInh:"); v != "0000000000000000" {
		t.Errorf("child CapInh %s, want none", v)
	}
	if v := field("oom_score_adj:"); v != "0" {
		t.Errorf("child oom_score_adj %s, want 0", v)
	}
	if v := strings.Fields(field("Max open files")); len(v) < 1 || v[0] != "1024" {
		t.Errorf("child soft RLIMIT_NOFILE %v, want 1024", v)
	}
}

// execStatusHelper is a picket that holds what the daemon holds (a raised
// oom_score_adj, here upwards since lowering needs CAP_SYS_RESOURCE, and
// RLIMIT_NOFILE at its hard limit) and runs an exec action printing the
// child's status.
func execStatusHelper() int {
	if err := os.WriteFile("/proc/self/oom_score_adj", []byte("300"), 0); err != nil {
		fmt.Println("oom_score_adj:", err)
		return 1
	}
	var lim unix.Rlimit
	unix.Getrlimit(unix.RLIMIT_NOFILE, &lim)
	lim.Cur = lim.Max
	unix.Setrlimit(unix.RLIMIT_NOFILE, &lim)
	st, _ := os.ReadFile("/proc/self/status")
	for _, l := range strings.Split(string(st), "\n") {
		if strings.HasPrefix(l, "CapAmb:") {
			fmt.Println("parent", l)
		}
	}
	fmt.Println("parent oom_score_adj: 300")
	r, err := NewRunner(Options{StateDir: os.Getenv("PICKET_ACT_STATE")})
	if err != nil {
		fmt.Println(err)
		return 1
	}
	defer r.Close()
	// A fixed test command line (no value of a process in it).
	res := r.Do(context.Background(), Request{Spec: &ExecSpec{Argv: []string{"/bin/sh", "-c", "grep -E '^Cap(Inh|Amb)' /proc/self/status; printf 'oom_score_adj: '; cat /proc/self/oom_score_adj; grep 'Max open files' /proc/self/limits | sed 's/^Max open files *//;s/^/Max open files /'"}}})
	es, _ := ReadJournal(os.Getenv("PICKET_ACT_STATE"))
	for _, e := range es {
		if e.ID == res.ID && e.Phase == PhaseResult {
			fmt.Print(e.Output)
		}
	}
	if res.Error != "" {
		fmt.Println("exec:", res.Error)
		return 1
	}
	return 0
}
