package notify

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/picket-guard/picket/internal/alarm"
)

func TestLogFileLogfmt(t *testing.T) {
	env := testEnv(t)
	path := filepath.Join(t.TempDir(), "logdir", "ProcNumChkRed.log")
	n, err := New("red-log", &LogSpec{Path: path}, env)
	if err != nil {
		t.Fatal(err)
	}
	defer n.(*logNotifier).Close()
	if err := n.Notify(context.Background(), stormBatch()); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	want := `ts=2026-04-28T09:30:00Z host=moscow rule=ProcNumChkRed case=imapd level=emergency status=firing key="user=alice comm=imapd" msg="comm=imapd count=93 user=alice" comm=imapd count=93 user=alice
ts=2026-04-28T09:30:00Z host=moscow rule=ProcNumChkRed case=imapd level=emergency status=firing key="user=bob comm=imapd" msg="comm=imapd count=121 user=bob" comm=imapd count=121 user=bob
ts=2026-04-28T09:30:00Z host=moscow rule=ProcNumChkRed case=imapd level=emergency status=firing key="user=carol comm=imapd" msg="comm=imapd count=90 user=carol" comm=imapd count=90 user=carol
`
	if string(b) != want {
		t.Errorf("log file:\n%s\nwant:\n%s", b, want)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm()&^0o640 != 0 {
		t.Errorf("log file mode %v, want at most 0640", fi.Mode().Perm())
	}
}

// logrotate renames the file and sends SIGHUP; Reopen makes the next line
// go to a new file of the same name.
func TestLogReopenAfterRotation(t *testing.T) {
	env := testEnv(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "picket.log")
	n, err := New("diag", &LogSpec{Path: path}, env)
	if err != nil {
		t.Fatal(err)
	}
	l := n.(*logNotifier)
	defer l.Close()
	ctx := context.Background()
	if err := l.Notify(ctx, procBatch(alarm.Firing, procRow("alice", "imapd", 93))); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	if err := l.Notify(ctx, procBatch(alarm.Firing, procRow("bob", "imapd", 94))); err != nil {
		t.Fatal(err)
	}
	if err := l.Reopen(); err != nil {
		t.Fatal(err)
	}
	if err := l.Notify(ctx, procBatch(alarm.Resolved, procRow("alice", "imapd", 3))); err != nil {
		t.Fatal(err)
	}
	old, _ := os.ReadFile(path + ".1")
	cur, _ := os.ReadFile(path)
	if strings.Count(string(old), "\n") != 2 || !strings.Contains(string(old), "user=bob") {
		t.Errorf("rotated file (written until Reopen):\n%s", old)
	}
	if strings.Count(string(cur), "\n") != 1 || !strings.Contains(string(cur), "status=resolved") {
		t.Errorf("new file:\n%s", cur)
	}
}

func TestLogRefusesSymlink(t *testing.T) {
	dir := t.TempDir()
	victim := filepath.Join(dir, "shadow")
	if err := os.WriteFile(victim, []byte("root:x:0:\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "picket.log")
	if err := os.Symlink(victim, path); err != nil {
		t.Fatal(err)
	}
	n, err := New("diag", &LogSpec{Path: path}, testEnv(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Notify(context.Background(), stormBatch()); err == nil {
		t.Fatal("wrote through a symlink")
	}
	if b, _ := os.ReadFile(victim); string(b) != "root:x:0:\n" {
		t.Errorf("symlink target changed: %q", b)
	}
}

func TestLogStderrJSON(t *testing.T) {
	env := testEnv(t)
	var out safeBuffer
	env.Stderr = &out
	n, err := New("err", &LogSpec{Stderr: true, Format: "json"}, env)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Notify(context.Background(), stormBatch()); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != 3 {
		t.Fatalf("%d lines, want 3:\n%s", len(lines), out.String())
	}
	var got struct {
		TS     string         `json:"ts"`
		Host   string         `json:"host"`
		Rule   string         `json:"rule"`
		Level  string         `json:"level"`
		Status string         `json:"status"`
		Row    map[string]any `json:"row"`
	}
	if err := json.Unmarshal([]byte(lines[1]), &got); err != nil {
		t.Fatalf("line %q: %v", lines[1], err)
	}
	if got.TS != "2026-04-28T09:30:00Z" || got.Host != "moscow" || got.Rule != "ProcNumChkRed" || got.Level != "emergency" ||
		got.Status != "firing" || got.Row["user"] != "bob" || got.Row["count"] != float64(121) {
		t.Errorf("json line: %+v", got)
	}
}

// A row field named like a fixed key cannot overwrite it.
func TestLogfmtRowFieldCannotShadowFixedKeys(t *testing.T) {
	a := procAlarm(map[string]any{"host": "elsewhere", "level": "info", "user": "alice"}, alarm.Firing)
	a.Message = ""
	line := string(logfmtLine(a, testNow))
	if !strings.Contains(line, " host=moscow ") || !strings.Contains(line, " row.host=elsewhere") || !strings.Contains(line, " row.level=info") {
		t.Errorf("line: %s", line)
	}
}
