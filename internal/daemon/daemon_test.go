package daemon

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/picket-guard/picket/internal/act"
	"github.com/picket-guard/picket/internal/notify"
	"github.com/picket-guard/picket/internal/rules"
)

// loader loads src as the configuration, with notify's and act's specs (as
// main wires them).
func loader(src string) func(string) (*rules.Config, string, error) {
	reg := rules.Registry{
		Output:      func(k string) (any, bool) { s, ok := notify.NewSpec(k); return s, ok },
		Action:      func(k string) (any, bool) { s, ok := act.NewSpec(k); return s, ok },
		Protect:     func() any { return &act.Protected{} },
		OutputKinds: notify.Kinds(),
		ActionKinds: act.Kinds(),
	}
	return func(string) (*rules.Config, string, error) {
		cfg, err := rules.LoadBytes("test.yaml", []byte(src), reg)
		return cfg, "test.yaml", err
	}
}

// openUnder lists the files under dir this process holds open.
func openUnder(t *testing.T, dir string) []string {
	t.Helper()
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, fd := range fds {
		target, err := os.Readlink(filepath.Join("/proc/self/fd", fd.Name()))
		if err == nil && strings.HasPrefix(target, dir+"/") {
			out = append(out, target)
		}
	}
	return out
}

// released checks that nothing under state is left open, and that the
// spool can be locked again (a second picket, or New retried, would need it).
func released(t *testing.T, state string) {
	t.Helper()
	if open := openUnder(t, state); len(open) > 0 {
		t.Errorf("still open after the error: %v", open)
	}
	disp, err := notify.NewDispatcher(notify.DispatcherOptions{Dir: filepath.Join(state, "spool"), Env: notify.Env{StateDir: state}})
	if err != nil {
		t.Fatalf("spool still locked: %v", err)
	}
	disp.Close()
}

const cfgOK = `
outputs:
  ops: {log: {stderr: true}}
rules:
  - name: storm
    table: process_groups
    if: count >= 100000
    then: [ops]
`

// TestNewClosesOnError: when New fails after opening the log, the
// history, the journal and the spool (here: an output that cannot be
// built, its CA file missing), it closes all of them.
func TestNewClosesOnError(t *testing.T) {
	state := t.TempDir()
	src := `
outputs:
  ops: {mail: {to: [root@localhost], server: "127.0.0.1:25", tls_ca_file: /nonexistent/picket-ca.pem}}
rules:
  - name: storm
    table: process_groups
    if: count >= 100000
    then: [ops]
`
	d, err := New(Options{LoadConfig: loader(src), StateDir: state, Stderr: io.Discard, Listen: "off", NoProtect: true})
	if err == nil {
		d.closeState()
		t.Fatal("New built a mail output whose CA file is missing")
	}
	if !strings.Contains(err.Error(), "tls_ca_file") {
		t.Errorf("err = %v, want it to name tls_ca_file", err)
	}
	for _, f := range []string{"picket.log", "history.db", act.JournalFile, "spool"} {
		if _, err := os.Stat(filepath.Join(state, f)); err != nil {
			t.Errorf("New failed before opening %s, so the test proves nothing: %v", f, err)
		}
	}
	released(t, state)

	// The same state directory serves a daemon that starts.
	d, err = New(Options{LoadConfig: loader(cfgOK), StateDir: state, Stderr: io.Discard, Listen: "off", NoProtect: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.closeState(); err != nil {
		t.Fatal(err)
	}
	released(t, state)
}

// TestRunClosesOnError: a Run that cannot start its HTTP server (a public
// address without a token file) stops its workers and closes the state.
func TestRunClosesOnError(t *testing.T) {
	t.Setenv("GOMEMLIMIT", "off") // Run would lower the test binary's own limit
	state := t.TempDir()
	d, err := New(Options{LoadConfig: loader(cfgOK), StateDir: state, Stderr: io.Discard, Listen: "0.0.0.0:0", NoProtect: true})
	if err != nil {
		t.Fatal(err)
	}
	err = d.Run(context.Background(), nil)
	if err == nil || !strings.Contains(err.Error(), "token file") {
		t.Fatalf("Run = %v, want the refusal to listen without a token", err)
	}
	released(t, state)
}

// TestReloadReopensLogs: SIGHUP (Reload) after logrotate moved the files
// away. picket.log is reopened by name whether or not the new
// configuration loads, so the outcome lands in the new file; a log output
// whose directory became a file, and a picket.log replaced by a symlink,
// are warned about, naming the file, and the symlink is not followed.
func TestReloadReopensLogs(t *testing.T) {
	state := t.TempDir()
	outDir := filepath.Join(t.TempDir(), "alerts")
	out := filepath.Join(outDir, "alerts.log")
	src := `
outputs:
  alerts: {log: {path: ` + out + `}}
rules:
  - name: storm
    table: process_groups
    if: count >= 100000
    then: [alerts]
`
	var cur atomic.Value
	cur.Store(src)
	load := func(string) (*rules.Config, string, error) { return loader(cur.Load().(string))("") }
	var logs strings.Builder
	w := &syncWriter{w: &logs}
	d, err := New(Options{LoadConfig: load, StateDir: state, Stderr: w, Listen: "off", NoProtect: true})
	if err != nil {
		t.Fatal(err)
	}
	defer d.closeState()
	plog := filepath.Join(state, "picket.log")
	read := func(path string) string {
		t.Helper()
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}

	// The output's directory is a file: the reload stands, the output's
	// failure is logged with its path, in the new picket.log too.
	if err := os.WriteFile(outDir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(plog, plog+".1"); err != nil {
		t.Fatal(err)
	}
	if err := d.Reload(); err != nil {
		t.Fatal(err)
	}
	if s := w.String(); !strings.Contains(s, "reopening log outputs") || !strings.Contains(s, out) {
		t.Errorf("no warning naming %s:\n%s", out, s)
	}
	if s := read(plog); !strings.Contains(s, "reopening log outputs") || !strings.Contains(s, "configuration reloaded") {
		t.Errorf("the new picket.log holds:\n%s", s)
	}
	if s := read(plog + ".1"); strings.Contains(s, "configuration reloaded") {
		t.Errorf("the reload was logged to the rotated picket.log:\n%s", s)
	}

	// A configuration that does not load: picket.log is reopened anyway.
	cur.Store("rules: [")
	if err := os.Rename(plog, plog+".2"); err != nil {
		t.Fatal(err)
	}
	if err := d.Reload(); err == nil {
		t.Fatal("Reload accepted a configuration that does not parse")
	}
	if s := read(plog); !strings.Contains(s, "reload refused") {
		t.Errorf("the refusal is not in the new picket.log:\n%s", s)
	}

	// picket.log replaced by a symlink: not followed, warned about, and
	// picket writes on to the file it had open.
	cur.Store(src)
	victim := filepath.Join(t.TempDir(), "shadow")
	if err := os.WriteFile(victim, []byte("root:x:0:\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(plog, plog+".3"); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(victim, plog); err != nil {
		t.Fatal(err)
	}
	if err := d.Reload(); err != nil {
		t.Fatal(err)
	}
	if s := w.String(); !strings.Contains(s, "reopening picket.log") || !strings.Contains(s, plog) {
		t.Errorf("no warning naming %s:\n%s", plog, s)
	}
	if s := read(victim); s != "root:x:0:\n" {
		t.Errorf("picket.log's symlink was followed; its target holds %q", s)
	}
	if s := read(plog + ".3"); !strings.Contains(s, "reopening picket.log") {
		t.Errorf("the warning did not reach the file picket.log had open:\n%s", s)
	}
}
