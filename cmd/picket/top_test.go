package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/picket-guard/picket/internal/collect"
	"github.com/picket-guard/picket/internal/doctor"
	"github.com/picket-guard/picket/internal/testkit"
)

// frameTime is the one part of a frame that changes from run to run.
var frameTime = regexp.MustCompile(`\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\S*`)

func normalizeFrame(s string) string { return frameTime.ReplaceAllString(s, "TIME") }

// TestTopOnceGolden prints the plain frame of the moscow fixture: the limits
// as ASCII bars (numothersock at its barrier with 17 failures), the worst
// verdict, the groups with the hostile names escaped, the socket holders.
func TestTopOnceGolden(t *testing.T) {
	out, errOut, code := runCLI(t, "top", "--once", "--root", moscowRoot, "--interval", "0")
	if code != 0 || errOut != "" {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	testkit.Golden(t, "top-once-moscow.txt", []byte(normalizeFrame(out)))
	for i, l := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		if n := len([]rune(l)); n > 80 {
			t.Errorf("line %d is %d characters: %q", i+1, n, l)
		}
		if strings.ContainsFunc(l, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
			t.Errorf("line %d has a control character: %q", i+1, l)
		}
	}
	// Two samples apart: the change column is filled (nothing moves in a
	// fixture tree), and --width and --top shape the frame.
	out, _, code = runCLI(t, "top", "--once", "--root", moscowRoot, "--interval", "10ms", "--width", "120", "--top", "2")
	if code != 0 || !strings.Contains(out, "    6       0        6  16.4 MiB  alice  imapd") || !strings.Contains(out, "1-2 of 11") {
		t.Errorf("exit %d:\n%s", code, out)
	}
	if !strings.Contains(out, "CRITICAL beancounters: numothersock refused 17 allocations (held 400 of barrier 400)  (+2 more: picket doctor)") {
		t.Errorf("at 120 columns the verdict is whole:\n%s", out)
	}
}

// TestTopFrom reads a daemon's API: served here from the fixture's snapshot
// and the doctor's report on it, the frame is the one --root prints.
func TestTopFrom(t *testing.T) {
	c, err := collect.New(collect.Options{Root: moscowRoot})
	if err != nil {
		t.Fatal(err)
	}
	snap, err := c.Collect(context.Background(), collect.Full)
	if err != nil {
		t.Fatal(err)
	}
	rep := doctor.Run(doctor.Input{Cur: snap}, doctor.Checks())
	var requests []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests = append(requests, r.Method+" "+r.URL.RequestURI())
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/api/v1/snapshot":
			json.NewEncoder(w).Encode(snap)
		case "/api/v1/findings":
			json.NewEncoder(w).Encode(rep)
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()

	out, errOut, code := runCLI(t, "top", "--once", "--from", srv.URL, "--interval", "0")
	if code != 0 || errOut != "" {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	testkit.Golden(t, "top-once-moscow.txt", []byte(normalizeFrame(out)))
	// It asks for the heaviest rows, not every process of a busy host.
	if want := []string{"GET /api/v1/snapshot?top=200", "GET /api/v1/findings"}; strings.Join(requests, ",") != strings.Join(want, ",") {
		t.Errorf("requests %q, want %q", requests, want)
	}

	// A daemon that has not collected yet: exit 1, saying so.
	starting := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
		w.Write([]byte(`{"error":"no collection yet: picket is starting"}`))
	}))
	defer starting.Close()
	_, errOut, code = runCLI(t, "top", "--once", "--from", starting.URL, "--interval", "0")
	if code != 1 || !strings.Contains(errOut, "no collection yet") {
		t.Errorf("starting daemon: exit %d, stderr %q", code, errOut)
	}
}

func TestTopFlags(t *testing.T) {
	for _, args := range [][]string{
		{"--from", "http://127.0.0.1:9749", "--root", moscowRoot},
		{"--interval", "-1s"},
		{"--top", "-1"},
		{"--width", "-3"},
		{"extra"},
	} {
		if _, errOut, code := runCLI(t, append([]string{"top"}, args...)...); code != 2 || errOut == "" {
			t.Errorf("%q: exit %d, stderr %q", args, code, errOut)
		}
	}
	if _, errOut, code := runCLI(t, "top", "--once", "--from", "127.0.0.1:9749"); code != 1 || !strings.Contains(errOut, "want http://HOST:PORT") {
		t.Errorf("--from without scheme: exit %d, %q", code, errOut)
	}
	if _, errOut, code := runCLI(t, "top", "--once", "--root", t.TempDir()); code != 1 || !strings.Contains(errOut, "no proc directory") {
		t.Errorf("empty root: exit %d, %q", code, errOut)
	}
	out, _, code := runCLI(t, "top", "--help")
	if code != 0 || !strings.Contains(out, "Sort the socket holders") || !strings.Contains(out, "-from URL") {
		t.Errorf("--help: %d\n%s", code, out)
	}
}

// TestTopNotATerminal runs the binary with stdout on a pipe and no --once:
// one plain frame, exit 0, nothing a terminal would take as a command.
func TestTopNotATerminal(t *testing.T) {
	bin := snapshotTestBinary(t)
	cmd := exec.Command(bin, "top", "--root", moscowRoot, "--interval", "0")
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("%v: %s", err, errOut.String())
		}
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		t.Fatal("picket top with stdout on a pipe did not exit")
	}
	if !strings.HasPrefix(out.String(), "picket top  moscow  ") || strings.Contains(out.String(), "\x1b") {
		t.Errorf("frame:\n%q", out.String())
	}
}

// TestTopTmux runs the real binary in a real terminal: tmux at 80×24, a
// storm of processes named by the test, then the keys an administrator
// presses. It checks the storm shows, the filter leaves only its rows,
// lone kernel threads show only after K, q quits with status 0 and the
// shell's screen is back.
func TestTopTmux(t *testing.T) {
	tmux := testkit.Need(t, "tmux", "tmux")
	bin := snapshotTestBinary(t)
	dir := t.TempDir()

	// The storm: 40 processes whose comm is the test's own name.
	const stormComm, stormSize = "pkt-topstorm", 40
	testkit.Sleepers(t, stormComm, stormSize, nil)

	// A tmux server of the test's own (its socket in dir), no user config,
	// running a plain shell with a known prompt.
	sock := filepath.Join(dir, "tmux.sock")
	tm := func(t *testing.T, args ...string) string {
		t.Helper()
		out, err := exec.Command(tmux, append([]string{"-S", sock, "-f", "/dev/null"}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("tmux %q: %v: %s", args, err, out)
		}
		return string(out)
	}
	t.Cleanup(func() { exec.Command(tmux, "-S", sock, "kill-server").Run() })
	tm(t, "-u", "new-session", "-d", "-s", "top", "-x", "80", "-y", "24",
		"env", "-i", "PATH="+os.Getenv("PATH"), "HOME="+dir, "TERM=screen", "LANG=C.UTF-8", "PS1=pkt$ ", "sh")
	tm(t, "set-option", "-t", "top", "status", "off") // all 24 lines are the program's
	screen := func(t *testing.T) []string {
		return strings.Split(strings.TrimRight(tm(t, "capture-pane", "-p", "-t", "top"), "\n"), "\n")
	}
	altScreen := func(t *testing.T) string {
		return strings.TrimSpace(tm(t, "display-message", "-p", "-t", "top", "#{alternate_on}"))
	}
	waitFor := func(t *testing.T, what string, ok func([]string) bool) []string {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for {
			s := screen(t)
			if ok(s) {
				return s
			}
			if time.Now().After(deadline) {
				t.Fatalf("no %s within 20 s; the screen:\n%s", what, strings.Join(s, "\n"))
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	waitFor(t, "shell prompt", func(s []string) bool { return strings.Contains(strings.Join(s, "\n"), "pkt$") })

	tm(t, "send-keys", "-t", "top", "-l", bin+" top --interval 500ms; echo picket-exit:$?")
	tm(t, "send-keys", "-t", "top", "Enter")

	// The storm's group shows with its 40 processes.
	s := waitFor(t, "storm group", func(s []string) bool {
		groups, _ := topTables(s)
		for _, r := range groups {
			if f := strings.Fields(r); len(f) >= 6 && f[0] == "40" && strings.Contains(r, stormComm) {
				return true
			}
		}
		return false
	})
	if a := altScreen(t); a != "1" {
		t.Errorf("alternate_on %q while picket top runs", a)
	}
	if len(s) != 24 || !strings.HasPrefix(s[0], "picket top") || !strings.HasPrefix(s[23], "q quit") {
		t.Errorf("the frame does not fill 80×24 from its title to its key line:\n%s", strings.Join(s, "\n"))
	}
	groups, _ := topTables(s)
	others := 0
	for _, r := range groups {
		if !strings.Contains(r, "topstorm") {
			others++
		}
	}
	if others == 0 {
		t.Fatalf("only the storm before filtering: the filter test would prove nothing\n%s", strings.Join(s, "\n"))
	}

	// Filter: only the storm's rows remain, in both tables.
	tm(t, "send-keys", "-t", "top", "/")
	tm(t, "send-keys", "-t", "top", "-l", "topstorm")
	tm(t, "send-keys", "-t", "top", "Enter")
	s = waitFor(t, "filtered frame", func(s []string) bool {
		j := strings.Join(s, "\n")
		return strings.Contains(j, `matching "topstorm"`) && strings.Contains(s[len(s)-1], "q quit")
	})
	groups, holders := topTables(s)
	if len(groups) == 0 {
		t.Fatalf("no group rows after filtering:\n%s", strings.Join(s, "\n"))
	}
	for _, r := range append(groups, holders...) {
		if !strings.Contains(r, "topstorm") {
			t.Errorf("row %q does not match the filter:\n%s", r, strings.Join(s, "\n"))
		}
	}

	// Kernel threads alone in their group are hidden, as htop hides them:
	// cpuhp/0 (one per cpu, on every kernel since 4.10) is not listed
	// until K. A container's pid namespace shows no kernel threads
	// (kthreadd is pid 2 in the host's only): there this part is skipped
	// and the session goes on to q.
	t.Run("lone kernel threads hidden", func(t *testing.T) {
		if b, _ := os.ReadFile("/proc/2/comm"); strings.TrimSpace(string(b)) != "kthreadd" {
			t.Skipf("no kernel threads in this pid namespace (a container: /proc/2 is %q, not kthreadd), so none to hide", strings.TrimSpace(string(b)))
		}
		tm(t, "send-keys", "-t", "top", "/")
		tm(t, "send-keys", "-t", "top", "C-u")
		tm(t, "send-keys", "-t", "top", "-l", "cpuhp/")
		tm(t, "send-keys", "-t", "top", "Enter")
		s := waitFor(t, "cpuhp filter", func(s []string) bool {
			j := strings.Join(s, "\n")
			return strings.Contains(j, `matching "cpuhp/"`) && strings.Contains(s[len(s)-1], "q quit")
		})
		if groups, _ := topTables(s); len(groups) != 0 || !strings.Contains(strings.Join(s, "\n"), "kernel thread") {
			t.Errorf("lone kernel threads listed by default, or their hiding not said:\n%s", strings.Join(s, "\n"))
		}
		tm(t, "send-keys", "-t", "top", "K")
		waitFor(t, "kernel threads after K", func(s []string) bool {
			groups, _ := topTables(s)
			return len(groups) > 0 && strings.Contains(groups[0], "cpuhp/")
		})
		tm(t, "send-keys", "-t", "top", "K")
		waitFor(t, "kernel threads hidden again", func(s []string) bool {
			groups, _ := topTables(s)
			return len(groups) == 0 && strings.Contains(strings.Join(s, "\n"), `matching "cpuhp/"`)
		})
	})

	// q quits with status 0 and gives the shell its screen back.
	tm(t, "send-keys", "-t", "top", "q")
	// (The command line holds "picket-exit:$?" too: the status is the line
	// that starts with it.)
	exited := func(s []string) string {
		for _, l := range s {
			if strings.HasPrefix(l, "picket-exit:") {
				return l
			}
		}
		return ""
	}
	s = waitFor(t, "exit status", func(s []string) bool { return exited(s) != "" })
	j := strings.Join(s, "\n")
	if exited(s) != "picket-exit:0" {
		t.Errorf("picket top did not exit 0:\n%s", j)
	}
	if strings.Contains(j, "USER × COMMAND") || strings.Contains(j, "q quit") {
		t.Errorf("the TUI is still on the screen after q:\n%s", j)
	}
	if a := altScreen(t); a != "0" {
		t.Errorf("alternate_on %q after q: the terminal was not restored", a)
	}
}

// topTables returns the row lines of the two tables on a captured screen.
func topTables(screen []string) (groups, holders []string) {
	var cur *[]string
	for i, l := range screen {
		t := strings.TrimSpace(l)
		switch {
		case strings.HasPrefix(t, "COUNT"):
			cur = &groups
		case strings.Contains(t, "SOCKET HOLDERS"):
			cur = nil
		case strings.HasPrefix(t, "PID") && strings.Contains(t, "TOTAL"):
			cur = &holders
		case i == len(screen)-1 && strings.HasPrefix(t, "q quit"), t == "":
		case cur != nil && !strings.HasPrefix(t, "(nothing matches"):
			*cur = append(*cur, l)
		}
	}
	return groups, holders
}

// TestTopFromDaemonAsRootAndNobody: against a real daemon on the default
// loopback listener, `picket top --from` works for root without a token;
// nobody is refused, told why, and gets in with --token-file.
func TestTopFromDaemonAsRootAndNobody(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: runs picket top as nobody; CI runs as root")
	}
	const token = "top-token-0123456789abcdef"
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	d := startDaemon(t, "--state-dir", t.TempDir(), "--token-file", tokenFile)
	d.waitFor("a first look", 20*time.Second, func() bool {
		code, _ := d.get("/api/v1/snapshot?top=1")
		return code == 200
	})

	// nobody needs a binary and a token file it may read.
	shared := testkit.SharedDir(t)
	bin := filepath.Join(shared, "picket")
	b, err := os.ReadFile(snapshotTestBinary(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, b, 0o755); err != nil {
		t.Fatal(err)
	}
	nobodyToken := filepath.Join(shared, "token")
	if err := os.WriteFile(nobodyToken, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(nobodyToken, 65534, 65534); err != nil {
		t.Fatal(err)
	}

	top := func(uid int, extra ...string) (string, string, int) {
		t.Helper()
		cmd := exec.Command(bin, append([]string{"top", "--once", "--interval", "0", "--from", d.base}, extra...)...)
		if uid != 0 {
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(uid)}}
		}
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return out.String(), errb.String(), code
	}
	if out, errOut, code := top(0); code != 0 || !strings.Contains(out, "HOLDER") && !strings.Contains(out, "USER") {
		t.Errorf("root: exit %d, stderr %q\n%s", code, errOut, out)
	}
	if out, errOut, code := top(65534); code != 1 || out != "" || !strings.Contains(errOut, "401 Unauthorized") || !strings.Contains(errOut, "only root can read") {
		t.Errorf("nobody: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if out, errOut, code := top(65534, "--token-file", nobodyToken); code != 0 || out == "" {
		t.Errorf("nobody with --token-file: exit %d, stderr %q", code, errOut)
	}
	// A token file others may read is refused before anything is sent.
	if err := os.Chmod(nobodyToken, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, errOut, code := top(65534, "--token-file", nobodyToken); code != 1 || !strings.Contains(errOut, "chmod 600") {
		t.Errorf("nobody with a readable token file: exit %d, stderr %q", code, errOut)
	}
}
