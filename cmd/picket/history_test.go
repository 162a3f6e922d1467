package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/picket-guard/picket/internal/history"
	"github.com/picket-guard/picket/internal/snapshot"
)

// historyStateDir records a few looks of a host whose crowd has a hostile
// name, the way picket run does, and returns the state directory.
func historyStateDir(t *testing.T) (string, time.Time) {
	t.Helper()
	dir := t.TempDir()
	s, err := history.Open(filepath.Join(dir, "history.db"), history.Options{})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now().Add(-10 * time.Minute).Truncate(time.Second)
	for i := range 5 {
		snap := &snapshot.Snapshot{Time: start.Add(time.Duration(i) * time.Minute)}
		snap.Kernel.Sockstat = &snapshot.Sockstat{TCP: snapshot.SockstatTCP{Orphan: 100 + 10*i}}
		snap.Processes.Groups = []snapshot.Group{{User: "nobody", UID: 65534, Comm: "ev\x1b[2Jil", Count: 50}}
		if err := s.Record(snap); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return dir, start
}

func TestHistoryCLI(t *testing.T) {
	dir, start := historyStateDir(t)
	out, errOut, code := runCLI(t, "history", "kernel.sockstat.tcp.orphan", "--state-dir", dir, "--since", "1h")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 5 || lines[0] != start.Format(time.RFC3339)+"  100" || !strings.HasSuffix(lines[4], "  140") {
		t.Errorf("output:\n%s", out)
	}

	out, errOut, code = runCLI(t, "history", "--json", "--state-dir", dir, "--step", "2m", "kernel.sockstat.tcp.orphan")
	if code != 0 {
		t.Fatalf("--json: exit %d: %s", code, errOut)
	}
	var pts []history.Point
	if err := json.Unmarshal([]byte(out), &pts); err != nil {
		t.Fatalf("--json: %v\n%s", err, out)
	}
	for _, p := range pts {
		if p.Min > p.Value || p.Value > p.Max {
			t.Errorf("point %+v", p)
		}
	}
	if len(pts) < 3 || pts[0].Min < 100 || pts[len(pts)-1].Max != 140 {
		t.Errorf("2m steps: %+v", pts)
	}

	// Names chosen by a process are escaped, and the escaped name is
	// accepted back.
	out, _, code = runCLI(t, "history", "--state-dir", dir, "--list", "group/")
	if code != 0 || strings.ContainsRune(out, 0x1b) || !strings.Contains(out, `group/nobody/ev\x1b[2Jil/count`) {
		t.Errorf("--list: %d %q", code, out)
	}
	out, _, code = runCLI(t, "history", "--state-dir", dir, `group/nobody/ev\x1b[2Jil/count`, "--since", "2026-01-01T00:00:00Z")
	if code != 0 || len(strings.Split(strings.TrimSpace(out), "\n")) != 5 || !strings.HasSuffix(strings.TrimSpace(out), "  50") {
		t.Errorf("escaped name: %d %q", code, out)
	}
	out, _, code = runCLI(t, "history", "--state-dir", dir, "--list", "--json")
	var names []string
	if code != 0 || json.Unmarshal([]byte(out), &names) != nil || len(names) != 11 {
		t.Errorf("--list --json: %d %q", code, out)
	}

	for _, c := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"no.such.series"}, 1, "no series no.such.series"},
		{[]string{"group/x/\x1b]0;pwn\a/count"}, 1, `\x1b]0;pwn`},
		{[]string{"kernel.sockstat.tcp.orphan", "--since", "yesterday"}, 2, "not a duration"},
		{[]string{}, 2, "give one SERIES"},
		{[]string{"a", "b"}, 2, "give one SERIES"},
	} {
		_, errOut, code := runCLI(t, append([]string{"history", "--state-dir", dir}, c.args...)...)
		if code != c.code || !strings.Contains(errOut, c.msg) || strings.ContainsRune(errOut, 0x1b) {
			t.Errorf("%q: exit %d %q", c.args, code, errOut)
		}
	}
	if _, errOut, code := runCLI(t, "history", "--state-dir", t.TempDir(), "processes.total"); code != 1 || !strings.Contains(errOut, "no history at") {
		t.Errorf("no store: %d %q", code, errOut)
	}
}

func TestParseSince(t *testing.T) {
	now := time.Date(2026, 3, 9, 12, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Time{
		"90m":                  now.Add(-90 * time.Minute),
		"7d":                   now.Add(-7 * 24 * time.Hour),
		"1.5d":                 now.Add(-36 * time.Hour),
		"2w":                   now.Add(-14 * 24 * time.Hour),
		"2026-03-01T00:00:00Z": time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC),
	} {
		if got, err := parseSince(in, now); err != nil || !got.Equal(want) {
			t.Errorf("parseSince(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "d", "-1h", "xd", "soon"} {
		if _, err := parseSince(in, now); err == nil {
			t.Errorf("parseSince(%q) accepted", in)
		}
	}
}
