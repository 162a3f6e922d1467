package doctor

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/picket-guard/picket/internal/cgroup"
	"github.com/picket-guard/picket/internal/snapshot"
	"github.com/picket-guard/picket/internal/testkit"
	"github.com/picket-guard/picket/internal/testkit/snaptest"
)

// forkLoopChild names itself pkt-doc-forker and, once told on stdin,
// forks path (a sleep named pkt-doc-forkee) every few milliseconds for at
// most 30 s, going on when fork fails.
func forkLoopChild(path string) {
	os.WriteFile("/proc/self/comm", []byte("pkt-doc-forker"), 0)
	bufio.NewReader(os.Stdin).ReadString('\n')
	for end := time.Now().Add(30 * time.Second); time.Now().Before(end); time.Sleep(5 * time.Millisecond) {
		syscall.ForkExec(path, []string{"pkt-doc-forkee", "30"}, &syscall.ProcAttr{})
	}
}

// liveCgroup makes a v1 cgroup of controller, removed (emptied first) on
// cleanup.
func liveCgroup(t *testing.T, controller string) (string, string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates cgroups")
	}
	fsys, err := cgroup.NewFS("/")
	if err != nil {
		t.Skip(err)
	}
	m := fsys.Controller(controller)
	if m == nil || m.Version != cgroup.V1 {
		t.Skipf("no v1 %s hierarchy here (a unified host's live cgroup tests are act's, where it delegates the controller)", controller)
	}
	name := fmt.Sprintf("pkt-doc-%s-%d", controller, os.Getpid())
	dir := filepath.Join(m.Dir, name)
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Skip(err)
	}
	t.Cleanup(func() {
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			b, _ := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
			for _, p := range strings.Fields(string(b)) {
				if n, err := strconv.Atoi(p); err == nil {
					syscall.Kill(n, syscall.SIGKILL)
				}
			}
			if os.Remove(dir) == nil {
				return
			}
		}
	})
	return dir, m.PathOf(name)
}

// gated starts cmd with a stdin it waits on, moves it into dir, and lets it
// go: all it forks is in the cgroup.
func gated(t *testing.T, dir string, cmd *exec.Cmd) {
	t.Helper()
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		cmd.Wait()
	})
	if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strconv.Itoa(cmd.Process.Pid)), 0); err != nil {
		t.Fatal(err)
	}
	in.Write([]byte("go\n"))
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func findCgroup(s *snapshot.Snapshot, path string) *snapshot.Cgroup {
	for i := range s.Cgroups {
		if s.Cgroups[i].Path == path {
			return &s.Cgroups[i]
		}
	}
	return nil
}

// TestLiveCgroupPidsLimit: a fork loop in a pids cgroup at its pids.max;
// the collector sees pids_events_max rise between two looks, and
// cgroup-limits is critical, naming the cgroup and the command.
func TestLiveCgroupPidsLimit(t *testing.T) {
	dir, path := liveCgroup(t, "pids")
	if err := os.WriteFile(filepath.Join(dir, "pids.max"), []byte("20"), 0); err != nil {
		t.Fatal(err)
	}
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Skip("no sleep")
	}
	bin := t.TempDir()
	os.Chmod(bin, 0o755)
	os.Symlink(sleep, filepath.Join(bin, "pkt-doc-forkee"))
	prev := snaptest.Live(t)
	if c := findCgroup(prev, path); c == nil || c.PidsMax == nil || *c.PidsMax != 20 {
		t.Fatalf("the collector does not see %s with pids.max 20: %+v", path, c)
	}
	cmd := exec.Command(os.Args[0])
	cmd.Env = []string{testkit.HelperEnv("forkloop"), "PICKET_DOCTOR_FORKEE=" + filepath.Join(bin, "pkt-doc-forkee")}
	gated(t, dir, cmd)
	events := func() uint64 {
		b, _ := os.ReadFile(filepath.Join(dir, "pids.events"))
		return cgroup.Keyed(b, "max")["max"]
	}
	deadline := time.Now().Add(10 * time.Second)
	for events() < 3 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if events() < 3 {
		t.Fatalf("no fork refused: pids.events %d", events())
	}
	cur := snaptest.Live(t)
	c := findCgroup(cur, path)
	if c == nil || c.PidsEventsMax == nil || *c.PidsEventsMax < 3 || c.Threads < 19 {
		t.Fatalf("cgroup in the snapshot: %+v", c)
	}
	f := runOne(CgroupLimits{}, Input{Prev: prev, Cur: cur, Interval: time.Second, Thresholds: DefaultThresholds()})
	wantSeverity(t, f, Critical)
	rows, _ := f.Evidence.Get("rows")
	var row *CgroupRow
	for i, r := range rows.(CgroupRows) {
		if r.Path == path {
			row = &rows.(CgroupRows)[i]
		}
	}
	if row == nil || row.ForksRefused == nil || *row.ForksRefused < 3 || !strings.Contains(row.TopCommands, "pkt-doc-forkee") {
		t.Fatalf("row %+v", row)
	}
	if strings.Contains(f.Title, path) && !strings.Contains(f.Title, "forks") {
		t.Errorf("title %q", f.Title)
	}
	if !strings.Contains(f.Explanation, "cgroup "+path) || !strings.Contains(f.Explanation, "pkt-doc-forkee") {
		t.Errorf("the explanation does not name the cgroup and the command: %s", f.Explanation)
	}
}

// TestLiveCgroupOOM: a process that needs more than its v1 memory
// cgroup's limit is OOM-killed; the counters and the finding show it.
func TestLiveCgroupOOM(t *testing.T) {
	dir, path := liveCgroup(t, "memory")
	for file, v := range map[string]string{"memory.limit_in_bytes": "33554432", "memory.memsw.limit_in_bytes": "33554432", "memory.swappiness": "0"} {
		if err := os.WriteFile(filepath.Join(dir, file), []byte(v), 0); err != nil && file == "memory.limit_in_bytes" {
			t.Fatal(err)
		}
	}
	prev := snaptest.Live(t)
	// A shell that holds 100 MB in a variable: more than the 32 MiB allowed.
	cmd := exec.Command("/bin/sh", "-c", `read go; x=$(head -c 100000000 /dev/zero | tr '\0' a); echo ${#x}`)
	gated(t, dir, cmd)
	oom := func() uint64 {
		b, _ := os.ReadFile(filepath.Join(dir, "memory.oom_control"))
		return cgroup.Keyed(b, "oom_kill")["oom_kill"]
	}
	deadline := time.Now().Add(20 * time.Second)
	for oom() == 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if oom() == 0 {
		t.Fatal("no OOM kill in memory.oom_control")
	}
	cur := snaptest.Live(t)
	c := findCgroup(cur, path)
	if c == nil || c.OOMKill == nil || *c.OOMKill == 0 || c.MemoryMax == nil || *c.MemoryMax != 32<<20 {
		t.Fatalf("cgroup in the snapshot: %s", mustJSON(c))
	}
	f := runOne(CgroupLimits{}, Input{Prev: prev, Cur: cur, Interval: time.Second, Thresholds: DefaultThresholds()})
	wantSeverity(t, f, Critical)
	if !strings.Contains(f.Title, "OOM kills since the last look") && !strings.Contains(f.Explanation, "cgroup "+path) {
		t.Errorf("title %q", f.Title)
	}
	if !strings.Contains(f.Explanation, "cgroup "+path) || !strings.Contains(f.Explanation, "OOM kills") {
		t.Errorf("the explanation does not name the cgroup and its OOM kills: %s", f.Explanation)
	}
}
