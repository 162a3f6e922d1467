package testkit

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"

	"github.com/picket-guard/picket/internal/testkit/hold"
)

func TestMain(m *testing.M) {
	Main(m, map[string]func() int{"exit7": func() int { return 7 }})
}

// recorder is a test that records its failures instead of failing.
type recorder struct {
	testing.TB
	errors, fatals []string
}

func (r *recorder) Errorf(format string, a ...any) {
	r.errors = append(r.errors, fmt.Sprintf(format, a...))
}
func (r *recorder) Fatalf(format string, a ...any) {
	r.fatals = append(r.fatals, fmt.Sprintf(format, a...))
	runtime.Goexit()
}
func (r *recorder) Logf(string, ...any) {}

// record runs f against a recorder on a goroutine of its own (a Fatalf
// ends that goroutine, as it ends a test's).
func record(t *testing.T, f func(testing.TB)) *recorder {
	r := &recorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		f(r)
	}()
	<-done
	return r
}

func TestGolden(t *testing.T) {
	t.Chdir(t.TempDir())
	if r := record(t, func(tb testing.TB) { Golden(tb, "out.txt", []byte("a\nb\n")) }); len(r.fatals) != 1 || !strings.Contains(r.fatals[0], "-update") {
		t.Errorf("a missing golden file: %+v", r)
	}
	*update = true
	r := record(t, func(tb testing.TB) { Golden(tb, "sub/out.txt", []byte("a\nb\n")) })
	*update = false
	if len(r.errors)+len(r.fatals) != 0 {
		t.Errorf("-update: %+v", r)
	}
	if b, err := os.ReadFile("testdata/sub/out.txt"); err != nil || string(b) != "a\nb\n" {
		t.Errorf("-update wrote %q, %v", b, err)
	}
	if r := record(t, func(tb testing.TB) { Golden(tb, "sub/out.txt", []byte("a\nb\n")) }); len(r.errors)+len(r.fatals) != 0 {
		t.Errorf("the same output: %+v", r)
	}
	r = record(t, func(tb testing.TB) { Golden(tb, "sub/out.txt", []byte("a\nc\n")) })
	if len(r.fatals) != 0 || len(r.errors) != 1 || !strings.Contains(r.errors[0], "line 2:\n- b\n+ c") ||
		!strings.Contains(r.errors[0], "-run 'TestGolden' -update") {
		t.Errorf("another output: %+v", r)
	}
}

func TestCopyTree(t *testing.T) {
	src := t.TempDir()
	for path, text := range map[string]string{"proc/1/stat": "1 (init) S", "proc/sys/kernel/pid_max": "32768\n"} {
		os.MkdirAll(filepath.Join(src, filepath.Dir(path)), 0o755)
		os.WriteFile(filepath.Join(src, path), []byte(text), 0o644)
	}
	os.Symlink("1", filepath.Join(src, "proc/self"))
	dst := CopyTree(t, src)
	if b, err := os.ReadFile(filepath.Join(dst, "proc/sys/kernel/pid_max")); err != nil || string(b) != "32768\n" {
		t.Errorf("file: %q %v", b, err)
	}
	if l, err := os.Readlink(filepath.Join(dst, "proc/self")); err != nil || l != "1" {
		t.Errorf("symlink: %q %v", l, err)
	}
	os.Remove(filepath.Join(dst, "proc/1/stat"))
	if _, err := os.Stat(filepath.Join(src, "proc/1/stat")); err != nil {
		t.Errorf("removing from the copy touched the source: %v", err)
	}
}

func TestRepoPath(t *testing.T) {
	if _, err := os.Stat(RepoPath(t, "testdata/fixtures/moscow/proc/stat")); err != nil {
		t.Error(err)
	}
}

// TestSleepers: every sleeper shows its comm when Sleepers returns, and is
// gone once its test has ended.
func TestSleepers(t *testing.T) {
	var cmds []*exec.Cmd
	t.Run("storm", func(t *testing.T) {
		cmds = Sleepers(t, "pkt-kit-sleep", 3, nil)
		for _, c := range cmds {
			if b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", c.Process.Pid)); string(b) != "pkt-kit-sleep\n" {
				t.Errorf("pid %d comm %q", c.Process.Pid, b)
			}
		}
	})
	for _, c := range cmds {
		if c.ProcessState == nil {
			t.Errorf("pid %d not reaped after its test", c.Process.Pid)
		}
	}
}

// TestStartSockets: the holder has its name and exactly the sockets of its
// spec when StartSockets returns.
func TestStartSockets(t *testing.T) {
	spec := hold.Spec{Comm: "pkt-kit-hold", UnixPairs: 2, UDPBound: 1, UDPUnbound: 1, TCPPairs: 1, Netlink: 1}
	pid := StartSockets(t, spec, nil).Process.Pid
	WaitComm(t, pid, "pkt-kit-hold")
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	sockets := 0
	for _, fd := range fds {
		if l, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name())); strings.HasPrefix(l, "socket:") {
			sockets++
		}
	}
	if want := spec.Want().Sum(); sockets != want {
		t.Errorf("the holder has %d sockets, want %d", sockets, want)
	}
}

func TestHelper(t *testing.T) {
	err := HelperCommand("exit7").Run()
	if ee, ok := err.(*exec.ExitError); !ok || ee.Sys().(syscall.WaitStatus).ExitStatus() != 7 {
		t.Errorf("helper exit7: %v", err)
	}
	if err := HelperCommand("no-such-helper").Run(); err == nil {
		t.Error("an unknown helper ran")
	}
}

func TestEventually(t *testing.T) {
	n := 0
	Eventually(t, 0, "first poll", func() bool { n++; return n == 1 })
	r := record(t, func(tb testing.TB) { Eventually(tb, 0, "the impossible", func() bool { return false }) })
	if len(r.fatals) != 1 || r.fatals[0] != "no the impossible within 0s" {
		t.Errorf("%+v", r)
	}
}
