package testkit

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// execLimit bounds the wait for started processes to have exec'd; a
// loaded 2-core machine execs a hundred sleepers well within it.
const execLimit = 10 * time.Second

// NamedBin returns a directory holding, for each name, a symlink to
// sleep(1): a program executed as DIR/NAME has NAME as its comm (the
// kernel names a task after the file it executes: fs/exec.c,
// __set_task_comm), which is how a test makes an imapd storm without an
// imapd. It is a SharedDir, so processes started as nobody may execute
// from it.
func NamedBin(t testing.TB, names ...string) string {
	t.Helper()
	sleep := Need(t, "sleep", "coreutils")
	dir := SharedDir(t)
	for _, n := range names {
		if err := os.Symlink(sleep, filepath.Join(dir, n)); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// Sleepers starts n sleeping processes named comm, as attr says (nil: as
// the test itself; a Credential runs them as another user), and returns
// once every one has exec'd, that is once /proc/PID/comm reads comm: from
// then on any look at the machine sees all n. They are killed and reaped
// when the test ends, however it ends.
func Sleepers(t testing.TB, comm string, n int, attr *syscall.SysProcAttr) []*exec.Cmd {
	t.Helper()
	exe := filepath.Join(NamedBin(t, comm), comm)
	cmds := make([]*exec.Cmd, 0, n)
	t.Cleanup(func() {
		for _, c := range cmds {
			c.Process.Kill()
			c.Wait()
		}
	})
	for i := range n {
		c := exec.Command(exe, "600")
		c.SysProcAttr = attr
		if err := c.Start(); err != nil {
			t.Fatalf("start %s #%d: %v", comm, i, err)
		}
		cmds = append(cmds, c)
	}
	deadline := time.Now().Add(execLimit)
	for _, c := range cmds {
		waitComm(t, c.Process.Pid, comm, deadline)
	}
	return cmds
}

// WaitComm waits until process pid's comm reads comm: the exec (or the
// process's own rename) is done. It fails the test after 10 s.
func WaitComm(t testing.TB, pid int, comm string) {
	t.Helper()
	waitComm(t, pid, comm, time.Now().Add(execLimit))
}

func waitComm(t testing.TB, pid int, comm string, deadline time.Time) {
	t.Helper()
	path := fmt.Sprintf("/proc/%d/comm", pid)
	for {
		b, _ := os.ReadFile(path)
		if strings.TrimSuffix(string(b), "\n") == comm {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("pid %d is %q, never %q", pid, strings.TrimSuffix(string(b), "\n"), comm)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
