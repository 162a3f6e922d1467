// Package kerneltest provokes the real kernel into logging what picket reads
// from /dev/kmsg, for live tests: a fork refused by a pids cgroup at its
// limit, an OOM kill in a memory cgroup. Each provocation runs in a cgroup
// it creates under a unique name and removes, even when the test fails; no
// record is ever written to the kernel's log from here.
package kerneltest

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Root is where cgroup hierarchies are mounted.
const Root = "/sys/fs/cgroup"

// RequireRoot skips a test that needs root, and /dev/kmsg, saying why.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("provoking the kernel needs root (cgroups, /dev/kmsg): run the tests as root")
	}
	if _, err := os.Stat("/dev/kmsg"); err != nil {
		t.Skipf("no /dev/kmsg on this host: %v", err)
	}
}

// Cgroup is a cgroup made for one test.
type Cgroup struct {
	// Dir is its directory; Path is its path as the kernel prints it
	// (relative to the hierarchy's root: "/picket-test-...").
	Dir  string
	Path string
}

// NewCgroup makes a cgroup with the controller: under ROOT/CONTROLLER on a
// cgroup v1 (or hybrid) host, under ROOT itself on a pure v2 host where
// the controller is enabled for children. Its name is unique to the run:
// the pids controller logs its refusal only once per cgroup. The cgroup
// and anything left in it are removed when the test ends.
func NewCgroup(t testing.TB, controller string) *Cgroup {
	t.Helper()
	base := filepath.Join(Root, controller)
	if _, err := os.Stat(filepath.Join(base, "cgroup.procs")); err != nil {
		b, err := os.ReadFile(filepath.Join(Root, "cgroup.subtree_control"))
		if err != nil || !bytes.Contains(b, []byte(controller)) {
			t.Skipf("no %s controller mounted at %s (v1) or enabled in %s (v2)", controller, base, Root)
		}
		base = Root
	}
	name := fmt.Sprintf("picket-test-%s-%d-%d", controller, os.Getpid(), time.Now().UnixNano())
	dir := filepath.Join(base, name)
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatalf("make cgroup: %v", err)
	}
	cg := &Cgroup{Dir: dir, Path: "/" + name}
	t.Cleanup(cg.remove)
	return cg
}

// Set writes a control file of the cgroup.
func (cg *Cgroup) Set(t testing.TB, file, value string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(cg.Dir, file), []byte(value), 0o644); err != nil {
		t.Fatalf("cgroup %s: %v", file, err)
	}
}

// Has says whether the cgroup has a control file.
func (cg *Cgroup) Has(file string) bool {
	_, err := os.Stat(filepath.Join(cg.Dir, file))
	return err == nil
}

// remove kills what is left in the cgroup and removes it.
func (cg *Cgroup) remove() {
	for i := 0; i < 100; i++ {
		b, _ := os.ReadFile(filepath.Join(cg.Dir, "cgroup.procs"))
		pids := strings.Fields(string(b))
		for _, p := range pids {
			if pid, err := strconv.Atoi(p); err == nil {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		if err := os.Remove(cg.Dir); err == nil || os.IsNotExist(err) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// The only scripts run: constants of this file. A v1 controller takes a
// task only by its pid written to cgroup.procs (CLONE_INTO_CGROUP is for
// cgroup2), so the forking process must move itself in before it forks:
// the shell does that, and nothing a process chose reaches it.
const (
	forkLoopScript = `i=0; while [ $i -lt 10 ]; do sleep 30 >/dev/null 2>&1 & i=$((i+1)); done 2>/dev/null; kill $(jobs -p) 2>/dev/null; exit 0`
	ddScript       = `exec dd if=/dev/zero of=/dev/null bs=64M count=4`
)

// run starts one of the scripts above with sh inside the cgroup (the shell
// moves itself in before running it) and waits for it. Its output is
// returned for the test's log.
func (cg *Cgroup) run(t testing.TB, script string) (pid int, out string) {
	t.Helper()
	cmd := exec.Command("sh", "-c", `echo $$ > "$CG/cgroup.procs" || exit 99; `+script)
	cmd.Env = append(os.Environ(), "CG="+cg.Dir)
	var b bytes.Buffer
	cmd.Stdout, cmd.Stderr = &b, &b
	if err := cmd.Start(); err != nil {
		t.Fatalf("start: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if cmd.ProcessState.ExitCode() == 99 {
			t.Fatalf("could not join cgroup %s: %s", cg.Dir, b.String())
		}
		_ = err
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Fatalf("script in %s did not end in 30s: %s", cg.Dir, b.String())
	}
	return cmd.Process.Pid, b.String()
}

// ForkRejected makes a fresh pids cgroup limited to 3 tasks and runs a
// fork loop in it, so that the kernel logs "cgroup: fork rejected by pids
// controller in PATH" (kernel/cgroup/pids.c, once per cgroup). It returns
// the cgroup's path as the kernel prints it and when the loop started.
func ForkRejected(t testing.TB) (path string, started time.Time) {
	t.Helper()
	cg := NewCgroup(t, "pids")
	cg.Set(t, "pids.max", "3")
	started = time.Now()
	_, out := cg.run(t, forkLoopScript)
	t.Logf("fork loop in %s: %s", cg.Path, strings.TrimSpace(out))
	return cg.Path, started
}

// OOMKill makes a fresh memory cgroup limited to 16 MiB (and no swap) and
// runs dd with a 64 MiB buffer in it, which the kernel's OOM killer kills
// (mm/oom_kill.c). It returns the victim's pid and comm and the cgroup's
// path as the kernel prints them.
func OOMKill(t testing.TB) (pid int, comm, path string, started time.Time) {
	t.Helper()
	cg := NewCgroup(t, "memory")
	limit := strconv.Itoa(16 << 20)
	if cg.Has("memory.limit_in_bytes") {
		cg.Set(t, "memory.limit_in_bytes", limit)
		if cg.Has("memory.memsw.limit_in_bytes") {
			cg.Set(t, "memory.memsw.limit_in_bytes", limit)
		}
	} else {
		cg.Set(t, "memory.max", limit)
		if cg.Has("memory.swap.max") {
			cg.Set(t, "memory.swap.max", "0")
		}
	}
	started = time.Now()
	// exec keeps the shell's pid: the victim is the process started here.
	pid, out := cg.run(t, ddScript)
	t.Logf("dd in %s (pid %d): %s", cg.Path, pid, strings.TrimSpace(out))
	return pid, "dd", cg.Path, started
}
