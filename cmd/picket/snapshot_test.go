package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/picket-guard/picket/internal/testkit"
	"github.com/picket-guard/picket/internal/testkit/hold"
)

const moscowRoot = "../../testdata/fixtures/moscow"

var (
	snapBinOnce sync.Once
	snapBin     string
	snapBinErr  error
)

// snapshotTestBinary builds the real static binary once per test run, so
// the end-to-end tests run what an administrator runs.
func snapshotTestBinary(t *testing.T) string {
	t.Helper()
	snapBinOnce.Do(func() {
		dir, err := os.MkdirTemp("", "picket-bin-")
		if err != nil {
			snapBinErr = err
			return
		}
		snapBin = filepath.Join(dir, "picket")
		cmd := exec.Command("go", "build", "-o", snapBin, ".")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			os.RemoveAll(dir)
			snapBinErr = err
			snapBin = string(out)
		}
	})
	if snapBinErr != nil {
		t.Fatalf("build picket: %v\n%s", snapBinErr, snapBin)
	}
	return snapBin
}

// removeTestBinary removes what snapshotTestBinary built, once every test
// has run.
func removeTestBinary() {
	if snapBinErr == nil && snapBin != "" {
		os.RemoveAll(filepath.Dir(snapBin))
	}
}

func runCLI(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), args, &out, &errb)
	return out.String(), errb.String(), code
}

func TestHelpOnEveryCommand(t *testing.T) {
	for name := range commands() {
		out, _, code := runCLI(t, name, "--help")
		if code != 0 || !strings.Contains(out, "Usage: picket "+name) {
			t.Errorf("%s --help: code %d, out %q", name, code, out)
		}
	}
	out, _, code := runCLI(t, "help")
	if code != 0 || !strings.Contains(out, "snapshot") {
		t.Errorf("help: %d %q", code, out)
	}
	if _, errOut, code := runCLI(t, "frobnicate"); code != 2 || !strings.Contains(errOut, "unknown command") {
		t.Errorf("unknown command: %d %q", code, errOut)
	}
	if _, _, code := runCLI(t, "snapshot", "--no-such-flag"); code != 2 {
		t.Errorf("bad flag: exit %d, want 2", code)
	}
}

// TestSnapshotJSONContract checks the keys other tools script against,
// on the fixture, through the real binary.
func TestSnapshotJSONContract(t *testing.T) {
	bin := snapshotTestBinary(t)
	out, err := exec.Command(bin, "snapshot", "--json", "--root", moscowRoot).Output()
	if err != nil {
		t.Fatalf("picket snapshot --json: %v", err)
	}
	var m map[string]any
	if err := json.Unmarshal(out, &m); err != nil {
		t.Fatalf("not one JSON object: %v", err)
	}
	for _, path := range []string{
		"time", "host",
		"processes.total", "processes.threads", "processes.groups.0.user", "processes.groups.0.comm",
		"processes.groups.0.count", "processes.groups.0.threads", "processes.groups.0.rss_bytes",
		"sockets.totals.tcp", "sockets.totals.udp", "sockets.totals.unix", "sockets.totals.raw",
		"sockets.totals.netlink", "sockets.totals.packet", "sockets.totals.other",
		"sockets.tcp_states.LISTEN", "sockets.processes.0.pid", "sockets.processes.0.user", "sockets.processes.0.comm",
		"sockets.processes.0.tcp", "sockets.processes.0.udp", "sockets.processes.0.unix", "sockets.processes.0.raw",
		"sockets.processes.0.netlink", "sockets.processes.0.other", "sockets.processes.0.total",
		"sockets.processes.0.fds", "sockets.processes.0.fd_limit",
		"kernel.sockstat.sockets_used", "kernel.sockstat.tcp.inuse", "kernel.sockstat.tcp.orphan",
		"kernel.sockstat.tcp.tw", "kernel.sockstat.tcp.alloc", "kernel.sockstat.tcp.mem_pages",
		"kernel.sockstat.udp.inuse", "kernel.sockstat.udp.mem_pages",
		"kernel.tcp_mem_pages.2", "kernel.tcp_max_orphans", "kernel.file_nr.allocated", "kernel.file_nr.max",
		"kernel.pid_max", "kernel.threads_max", "kernel.page_size",
		"memory.psi.memory.some_avg10", "memory.psi.memory.full_avg10",
		"beancounters.0.uid", "beancounters.0.resource", "beancounters.0.held", "beancounters.0.maxheld",
		"beancounters.0.barrier", "beancounters.0.limit", "beancounters.0.failcnt",
	} {
		if _, ok := lookup(m, path); !ok {
			t.Errorf("JSON lacks %s", path)
		}
	}
	if v, _ := lookup(m, "kernel.sockstat.tcp.orphan"); v != 21564.0 {
		t.Errorf("orphan = %v, want the story's 21564", v)
	}
	if v, _ := lookup(m, "processes.groups.0.count"); v != 6.0 {
		t.Errorf("heaviest group count = %v, want 6 (sorted heaviest first)", v)
	}
}

func lookup(v any, path string) (any, bool) {
	for _, k := range strings.Split(path, ".") {
		switch x := v.(type) {
		case map[string]any:
			var ok bool
			if v, ok = x[k]; !ok {
				return nil, false
			}
		case []any:
			i := int(k[0] - '0')
			if len(k) != 1 || i >= len(x) {
				return nil, false
			}
			v = x[i]
		default:
			return nil, false
		}
	}
	return v, true
}

// TestSnapshotHostileNameLive: a live process named "$(touch /tmp/x)" or
// holding escape sequences; the real binary prints the summary; nothing is
// executed and no raw control byte reaches the terminal.
func TestSnapshotHostileNameLive(t *testing.T) {
	bin := snapshotTestBinary(t)
	marker := "/tmp/x"
	if _, err := os.Stat(marker); err == nil {
		t.Skipf("%s exists already: cannot tell whether a name was executed", marker)
	}
	names := []string{"$(touch /tmp/x)", "`touch /tmp/x`", "\x1b[31mRED\x1b]2;t\a"}
	for _, n := range names {
		// The holder renames itself through /proc/self/comm: the name
		// reaches it in its environment, never through a shell.
		testkit.StartSockets(t, hold.Spec{Comm: n}, nil)
	}
	out, err := exec.Command(bin, "snapshot", "--top", "100000").Output()
	if err != nil {
		t.Fatalf("picket snapshot: %v", err)
	}
	if _, err := os.Stat(marker); err == nil {
		os.Remove(marker)
		t.Fatalf("%s was created: a name was executed", marker)
	}
	if bytes.ContainsAny(out, "\x1b\a\r\x00") {
		t.Errorf("raw control bytes in the summary")
	}
	for _, want := range []string{"$(touch /tmp/x)", "`touch /tmp/x`", `\x1b[31mRED\x1b]2;t\x07`} {
		if !strings.Contains(string(out), want) {
			t.Errorf("summary lacks %q", want)
		}
	}
}

func TestSnapshotRootIsolation(t *testing.T) {
	out, errOut, code := runCLI(t, "snapshot", "--root", moscowRoot)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if !strings.Contains(out, "picket snapshot of moscow") || !strings.Contains(out, "numothersock held 400 barrier 400 limit 400 failcnt 17") {
		t.Errorf("fixture summary:\n%s", out)
	}
	if _, errOut, code := runCLI(t, "snapshot", "--root", t.TempDir()); code != 1 || !strings.Contains(errOut, "no proc directory") {
		t.Errorf("empty root: %d %q", code, errOut)
	}
}
