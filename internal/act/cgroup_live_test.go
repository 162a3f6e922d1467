package act

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/picket-guard/picket/internal/cgroup"
	"github.com/picket-guard/picket/internal/testkit"
)

// Live tests of the cgroup actions in cgroups the tests make and remove:
// v1 controllers where the host has them (these machines' hybrid layout),
// the unified hierarchy for what needs no controller there (cgroup.freeze
// and cgroup.kill are core in v2), and v2 controllers where a host has
// them enabled. Every cgroup gets a unique name and is emptied (thawed, its
// processes killed) and removed on cleanup, failed test or not.

var cgSeq atomic.Int64

// testCgroup makes a cgroup in the hierarchy of controller ("" for the
// unified one) and returns its directory and its cgroup path.
func testCgroup(t *testing.T, controller string) (string, string) {
	t.Helper()
	needRoot(t, "creates cgroups")
	fsys, err := cgroup.NewFS("/")
	if err != nil {
		t.Skipf("no cgroups: %v", err)
	}
	var m *cgroup.Mount
	switch {
	case controller == "":
		m = fsys.Unified()
	case strings.HasPrefix(controller, "v2:"):
		// The controller in the unified hierarchy, whatever v1 has.
		controller = strings.TrimPrefix(controller, "v2:")
		if m = fsys.Unified(); m != nil && !m.Has(controller) {
			t.Skipf("the unified hierarchy at %s has no %s controller (a hybrid host: it is v1's here)", m.Point, controller)
		}
	default:
		m = fsys.Controller(controller)
	}
	if m == nil {
		t.Skipf("no %q hierarchy on this host", controller)
	}
	if controller != "" && m.Version == cgroup.V2 {
		// A v2 controller must be enabled in the parent's subtree_control.
		b, _ := os.ReadFile(filepath.Join(m.Dir, "cgroup.subtree_control"))
		if !strings.Contains(string(b), controller) {
			t.Skipf("the unified hierarchy has %s but does not delegate it to children", controller)
		}
	}
	name := fmt.Sprintf("pkt-act-%d-%d", os.Getpid(), cgSeq.Add(1))
	dir := filepath.Join(m.Dir, name)
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Skipf("cannot create a cgroup in %s: %v", m.Dir, err)
	}
	t.Cleanup(func() { emptyCgroup(dir) })
	return dir, m.PathOf(name)
}

// emptyCgroup thaws dir, kills what is in it, waits and removes it.
func emptyCgroup(dir string) {
	os.WriteFile(filepath.Join(dir, "cgroup.freeze"), []byte("0"), 0)
	os.WriteFile(filepath.Join(dir, "freezer.state"), []byte("THAWED"), 0)
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		b, _ := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
		pids := strings.Fields(string(b))
		for _, p := range pids {
			if n, err := strconv.Atoi(p); err == nil {
				syscall.Kill(n, syscall.SIGKILL)
			}
		}
		if len(pids) == 0 && os.Remove(dir) == nil {
			return
		}
	}
}

func cgRead(t *testing.T, dir, file string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, file))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

func cgWrite(t *testing.T, dir, file, v string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, file), []byte(v), 0); err != nil {
		t.Fatalf("write %s to %s/%s: %v", v, dir, file, err)
	}
}

// forkLoop is a process named pkt-forkloop that forks pkt-forkee children
// (sleep) every few milliseconds once it is inside dir, and says EAGAIN on
// its stdout the first time fork() fails with it. It stops by itself after
// a minute; its children sleep a minute.
type forkLoop struct {
	*child
	eagain chan struct{}
}

func startForkLoop(t *testing.T, dir string) *forkLoop {
	t.Helper()
	bin := testkit.NamedBin(t, "pkt-forkee")
	cmd := exec.Command(os.Args[0])
	cmd.Env = []string{testkit.HelperEnv("forkloop"), "PICKET_ACT_CHILD=" + filepath.Join(bin, "pkt-forkee")}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &child{cmd: cmd, pid: cmd.Process.Pid, done: make(chan struct{})}
	f := &forkLoop{child: c, eagain: make(chan struct{})}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if sc.Text() == "EAGAIN" {
				close(f.eagain)
				break
			}
		}
		io.Copy(io.Discard, out)
		cmd.Wait()
		close(c.done)
	}()
	t.Cleanup(func() {
		syscall.Kill(-c.pid, syscall.SIGKILL)
		c.waitExit(5 * time.Second)
	})
	cgWrite(t, dir, "cgroup.procs", strconv.Itoa(c.pid))
	in.Write([]byte("go\n"))
	return f
}

// forkLoopHelper: see forkLoop.
func forkLoopHelper() {
	os.WriteFile("/proc/self/comm", []byte("pkt-forkloop"), 0)
	bufio.NewReader(os.Stdin).ReadString('\n')
	path := os.Getenv("PICKET_ACT_CHILD")
	said := false
	for end := time.Now().Add(time.Minute); time.Now().Before(end); {
		_, err := syscall.ForkExec(path, []string{"pkt-forkee", "60"}, &syscall.ProcAttr{})
		if errors.Is(err, syscall.EAGAIN) {
			if !said {
				fmt.Println("EAGAIN")
				said = true
			}
			time.Sleep(20 * time.Millisecond)
			continue
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func pidsCurrent(t *testing.T, dir string) int {
	n, _ := strconv.Atoi(cgRead(t, dir, "pids.current"))
	return n
}

// TestLiveLimitStopsForkLoop: a fork loop runs in a v1 pids cgroup of its
// own; limit with pids_max current stops it (fork fails with EAGAIN,
// pids.events max counts the refusals) without killing anything, a
// bystander in another cgroup forks on, and undo puts "max" back.
func TestLiveLimitStopsForkLoop(t *testing.T) {
	for _, h := range []string{"pids", "v2:pids"} {
		t.Run(h, func(t *testing.T) { limitStopsForkLoop(t, h) })
	}
}

func limitStopsForkLoop(t *testing.T, controller string) {
	dir, path := testCgroup(t, controller)
	other, _ := testCgroup(t, controller)
	loop := startForkLoop(t, dir)
	if !waitFor(5*time.Second, func() bool { return pidsCurrent(t, dir) >= 10 }) {
		t.Fatalf("the fork loop did not fork: %d tasks", pidsCurrent(t, dir))
	}
	bystander := startForkLoop(t, other)
	cgWrite(t, other, "pids.max", "1000")
	state := t.TempDir()
	r := newRunner(t, Options{StateDir: state})
	res := r.Do(t.Context(), Request{Spec: &LimitSpec{CgroupTarget: CgroupTarget{Cgroup: path}, PidsMax: "current", For: time.Minute}, Rule: "test"})
	if res.Error != "" || !strings.Contains(res.Result, "lowered pids.max of "+path+" from max to") {
		t.Fatalf("limit: %+v", res)
	}
	limit, _ := strconv.Atoi(cgRead(t, dir, "pids.max"))
	select {
	case <-loop.eagain:
	case <-time.After(10 * time.Second):
		t.Fatal("fork() did not fail with EAGAIN at the limit")
	}
	// Forks between reading pids.current and writing the limit may leave
	// a task or two above it (the kernel kills nothing at a lower
	// pids.max); what counts is that the count grows no more.
	n := pidsCurrent(t, dir)
	time.Sleep(200 * time.Millisecond)
	if m := pidsCurrent(t, dir); m > n || m > limit+4 {
		t.Errorf("%d tasks, then %d, at pids.max %d: still forking", n, m, limit)
	}
	ev, _ := cgroup.Keyed([]byte(cgRead(t, dir, "pids.events")), "max")["max"]
	if ev == 0 {
		t.Errorf("pids.events max is 0 after refusals")
	}
	if !loop.alive() {
		t.Error("limit killed the fork loop; it must only stop its forks")
	}
	// The bystander is untouched: its limit, its forks.
	if got := cgRead(t, other, "pids.max"); got != "1000" {
		t.Errorf("bystander's pids.max %s", got)
	}
	before := pidsCurrent(t, other)
	if !waitFor(5*time.Second, func() bool { return pidsCurrent(t, other) > before }) {
		t.Error("the bystander stopped forking")
	}
	select {
	case <-bystander.eagain:
		t.Error("the bystander got EAGAIN")
	default:
	}
	// Undo restores the old value.
	if _, err := r.Undo(t.Context(), res.ID); err != nil {
		t.Fatal(err)
	}
	if got := cgRead(t, dir, "pids.max"); got != "max" {
		t.Errorf("pids.max after undo %s, want max", got)
	}
	if got := strings.Join(phases(journalOf(t, state), res.ID), ","); got != "intent,result,revert" {
		t.Errorf("journal %s", got)
	}
}

// TestLiveLimitEnds: a limit ends by itself at its time, and a restart
// (Recover) restores one whose picket died.
func TestLiveLimitEnds(t *testing.T) {
	dir, path := testCgroup(t, "pids")
	cgWrite(t, dir, "pids.max", "500")
	state := t.TempDir()
	r := newRunner(t, Options{StateDir: state})
	res := r.Do(t.Context(), Request{Spec: &LimitSpec{CgroupTarget: CgroupTarget{Cgroup: path}, PidsMax: "20", For: 300 * time.Millisecond}})
	if res.Error != "" || cgRead(t, dir, "pids.max") != "20" {
		t.Fatalf("limit: %+v, pids.max %s", res, cgRead(t, dir, "pids.max"))
	}
	if !waitFor(3*time.Second, func() bool { return cgRead(t, dir, "pids.max") == "500" }) {
		t.Errorf("not restored at its end: %s", cgRead(t, dir, "pids.max"))
	}
	// A picket that dies with a limit in force: the next one's Recover
	// restores it (the daemon's RevertOnRecover).
	crashed := newRunner(t, Options{StateDir: state})
	res = crashed.Do(t.Context(), Request{Spec: &LimitSpec{CgroupTarget: CgroupTarget{Cgroup: path}, PidsMax: "30", For: time.Hour}})
	if res.Error != "" || cgRead(t, dir, "pids.max") != "30" {
		t.Fatalf("limit: %+v", res)
	}
	crashed.disarm(res.ID) // as if killed -9: no timer, no Close
	next := newRunner(t, Options{StateDir: state, RevertOnRecover: true})
	if err := next.Recover(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := cgRead(t, dir, "pids.max"); got != "500" {
		t.Errorf("pids.max after Recover %s, want 500", got)
	}
}

// TestLiveLimitMemoryHighRounded: the kernel keeps memory.high in whole
// pages (memory_high_write parses it with page_counter_memparse,
// mm/memcontrol.c), so 1G+1 reads back 1G. The journal's intent must hold
// what the kernel shows: the revert restores the old value only while the
// file holds what picket set, and compared with the value written it would
// take the kernel's rounding for someone else's change and leave the limit
// in force. The revert here is a restarted picket's, from the journal alone.
func TestLiveLimitMemoryHighRounded(t *testing.T) {
	t.Run("v2", func(t *testing.T) {
		dir, path := testCgroup(t, "v2:memory")
		cgWrite(t, dir, "memory.high", "2147483648")
		limitRounded(t, "", filepath.Join(dir, "memory.high"), path)
	})
	// A hybrid host (these machines) has its memory controller in v1,
	// which has no memory.high, so limit refuses it there. v1's
	// memory.soft_limit_in_bytes is parsed by the same
	// page_counter_memparse (mem_cgroup_write, mm/memcontrol-v1.c) and
	// shown in whole pages too: bound over the memory.high of a v2 fixture
	// tree, it is a kernel file that rounds as memory.high does, in a
	// layout limit acts on.
	t.Run("v1-soft-limit-under-v2-fixture", func(t *testing.T) {
		dir, _ := testCgroup(t, "memory")
		soft := filepath.Join(dir, "memory.soft_limit_in_bytes")
		if _, err := os.Stat(soft); err != nil {
			t.Skipf("the memory hierarchy is v2 on this host (no %s): the v2 subtest is the real one", soft)
		}
		cgWrite(t, dir, "memory.soft_limit_in_bytes", "2147483648")
		root := testkit.CopyTree(t, "../../testdata/fixtures/cgroup-v2")
		high := filepath.Join(root, "sys/fs/cgroup/system.slice/apache2.service/memory.high")
		if err := syscall.Mount(soft, high, "", syscall.MS_BIND, ""); err != nil {
			t.Fatalf("bind %s over %s: %v", soft, high, err)
		}
		t.Cleanup(func() { syscall.Unmount(high, syscall.MNT_DETACH) }) // before the tree and the cgroup are removed
		limitRounded(t, root, high, "/system.slice/apache2.service")
	})
}

// limitRounded lowers the memory.high at file (2G) to 1G+1 in the cgroup
// path, as seen from root, and checks the kernel's 1G is journaled and
// reverted from the journal by the next picket.
func limitRounded(t *testing.T, root, file, path string) {
	t.Helper()
	const old, asked, shown = "2147483648", "1073741825", "1073741824"
	if got := cgRead(t, filepath.Dir(file), filepath.Base(file)); got != old {
		t.Fatalf("%s is %s before the limit, want %s", file, got, old)
	}
	state := t.TempDir()
	crashed := newRunner(t, Options{Root: root, StateDir: state})
	res := crashed.Do(t.Context(), Request{Spec: &LimitSpec{CgroupTarget: CgroupTarget{Cgroup: path}, MemoryHigh: asked, For: time.Hour}})
	if got := cgRead(t, filepath.Dir(file), filepath.Base(file)); res.Error != "" || got != shown {
		t.Fatalf("limit: %+v; the kernel shows %s, want %s (whole pages)", res, got, shown)
	}
	if want := "from " + old + " to " + shown + " until"; !strings.Contains(res.Result, want) {
		t.Errorf("result %q, want it to say %q: what the kernel shows", res.Result, want)
	}
	b, err := os.ReadFile(filepath.Join(state, JournalFile))
	if err != nil {
		t.Fatal(err)
	}
	var last *Undo
	for line := range strings.SplitSeq(strings.TrimSpace(string(b)), "\n") {
		var e Entry
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("journal line %q: %v", line, err)
		}
		if e.ID == res.ID && e.Phase == PhaseIntent {
			last = e.Undo
		}
	}
	if last == nil || last.Key != "memory.high" || last.Old != old || last.New != shown {
		t.Fatalf("the journal's last intent for %s holds %+v, want memory.high from %s to %s (not the %s asked)\n%s", res.ID, last, old, shown, asked, b)
	}
	crashed.disarm(res.ID) // as if killed -9: no timer, no Close
	next := newRunner(t, Options{Root: root, StateDir: state, RevertOnRecover: true})
	if err := next.Recover(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := cgRead(t, filepath.Dir(file), filepath.Base(file)); got != old {
		t.Errorf("%s after the next picket's Recover is %s, want %s restored", file, got, old)
	}
}

// TestLiveFreezeCgroup freezes a cgroup with two sleepers and thaws it by
// undo, in the v1 freezer and in the unified hierarchy.
func TestLiveFreezeCgroup(t *testing.T) {
	for _, h := range []struct{ name, controller, file, frozen, thawed string }{
		{"v1", "freezer", "freezer.state", "FROZEN", "THAWED"},
		{"v2", "", "cgroup.events", "frozen 1", "frozen 0"},
	} {
		t.Run(h.name, func(t *testing.T) {
			dir, path := testCgroup(t, h.controller)
			if h.controller == "" {
				if _, err := os.Stat(filepath.Join(dir, "cgroup.freeze")); err != nil {
					t.Skip("no cgroup.freeze (Linux before 5.2)")
				}
			}
			bin := testkit.NamedBin(t, "pkt-frozen")
			a := spawn(t, -1, nil, filepath.Join(bin, "pkt-frozen"), "600")
			b := spawn(t, -1, nil, filepath.Join(bin, "pkt-frozen"), "600")
			moveInto(t, dir, []int{a.pid, b.pid})
			outside := spawn(t, -1, nil, filepath.Join(bin, "pkt-frozen"), "600")
			r := newRunner(t, Options{})
			res := r.Do(t.Context(), Request{Spec: &FreezeCgroupSpec{CgroupTarget: CgroupTarget{Cgroup: path}, For: time.Minute}})
			if res.Error != "" || !strings.Contains(res.Result, "froze cgroup "+path) || !strings.Contains(res.Result, "2 processes") {
				t.Fatalf("freeze_cgroup: %+v", res)
			}
			if got := cgRead(t, dir, h.file); !strings.Contains(got, h.frozen) {
				t.Errorf("%s: %q", h.file, got)
			}
			if p, _ := r.procs.read(outside.pid); p.state == "T" || p.state == "D" {
				t.Errorf("a bystander is stopped: %s", p.state)
			}
			if _, err := r.Undo(t.Context(), res.ID); err != nil {
				t.Fatal(err)
			}
			if !waitFor(3*time.Second, func() bool { return strings.Contains(cgRead(t, dir, h.file), h.thawed) }) {
				t.Errorf("not thawed: %s", cgRead(t, dir, h.file))
			}
		})
	}
}

// TestLiveKillCgroup kills a fork loop's cgroup whole (v1: the bounded
// loop; v2: cgroup.kill), bystanders untouched.
func TestLiveKillCgroup(t *testing.T) {
	for _, h := range []struct{ name, controller, method string }{{"v1", "pids", "SIGKILL loop"}, {"v2", "", "cgroup.kill"}} {
		t.Run(h.name, func(t *testing.T) {
			dir, path := testCgroup(t, h.controller)
			if h.controller == "" {
				if _, err := os.Stat(filepath.Join(dir, "cgroup.kill")); err != nil {
					t.Skip("no cgroup.kill (Linux before 5.14)")
				}
			} else {
				cgWrite(t, dir, "pids.max", "64")
			}
			loop := startForkLoop(t, dir)
			if !waitFor(5*time.Second, func() bool {
				b, _ := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
				return strings.Count(string(b), "\n") >= 10
			}) {
				t.Fatal("the fork loop did not fork")
			}
			bin := testkit.NamedBin(t, "pkt-bystander")
			outside := spawn(t, -1, nil, filepath.Join(bin, "pkt-bystander"), "600")
			r := newRunner(t, Options{})
			res := r.Do(t.Context(), Request{Spec: &KillCgroupSpec{CgroupTarget: CgroupTarget{Cgroup: path}}})
			if res.Error != "" || !strings.Contains(res.Result, "killed cgroup "+path+" ("+h.method+")") {
				t.Fatalf("kill_cgroup: %+v", res)
			}
			if !loop.waitExit(5 * time.Second) {
				t.Error("the fork loop is alive")
			}
			if b, _ := os.ReadFile(filepath.Join(dir, "cgroup.procs")); len(strings.TrimSpace(string(b))) > 0 {
				t.Errorf("cgroup not empty: %s", b)
			}
			if !outside.alive() {
				t.Error("a bystander was killed")
			}
		})
	}
}

// TestLiveCgroupActionsRefuseProtected: a cgroup holding a protected
// process is refused whole by every cgroup action, and nothing changes.
func TestLiveCgroupActionsRefuseProtected(t *testing.T) {
	dir, path := testCgroup(t, "pids")
	bin := testkit.NamedBin(t, "pkt-guarded", "pkt-mate")
	guarded := spawn(t, -1, nil, filepath.Join(bin, "pkt-guarded"), "600")
	mate := spawn(t, -1, nil, filepath.Join(bin, "pkt-mate"), "600")
	moveInto(t, dir, []int{guarded.pid, mate.pid})
	r := newRunner(t, Options{Protected: Protected{PIDs: []int{guarded.pid}}})
	tgt := CgroupTarget{Cgroup: path}
	for _, spec := range []Spec{
		&LimitSpec{CgroupTarget: tgt, PidsMax: "1", For: time.Minute},
		&KillCgroupSpec{CgroupTarget: tgt},
		&KillSpec{Cgroup: path, Signal: "KILL"},
	} {
		res := r.Do(t.Context(), Request{Spec: spec})
		if spec.Kind() == "kill" {
			// A process kill takes the unprotected one only.
			if got := anyInts(res.Targets); len(got) != 1 || got[0] != mate.pid {
				t.Errorf("kill by cgroup: %+v", res)
			}
			continue
		}
		if !strings.HasPrefix(res.Result, "refused") || !strings.Contains(res.Result, "protected pid") || res.ID != "" {
			t.Errorf("%s: %+v", spec.Kind(), res)
		}
	}
	if got := cgRead(t, dir, "pids.max"); got != "max" {
		t.Errorf("pids.max changed to %s", got)
	}
	if !guarded.alive() {
		t.Error("the protected process was killed")
	}
}

// TestLiveSelectorsUnitCgroup: the unit and cgroup_glob selectors find the
// processes of a cgroup the test names like a systemd unit.
func TestLiveSelectorsUnitCgroup(t *testing.T) {
	needRoot(t, "creates cgroups")
	fsys, err := cgroup.NewFS("/")
	if err != nil || fsys.Controller("pids") == nil {
		t.Skip("no pids hierarchy")
	}
	m := fsys.Controller("pids")
	name := fmt.Sprintf("pkt-act-%d.service", os.Getpid())
	dir := filepath.Join(m.Dir, name)
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Skip(err)
	}
	t.Cleanup(func() { emptyCgroup(dir) })
	bin := testkit.NamedBin(t, "node")
	in := spawn(t, -1, nil, filepath.Join(bin, "node"), "600")
	out := spawn(t, -1, nil, filepath.Join(bin, "node"), "600")
	moveInto(t, dir, []int{in.pid})
	r := newRunner(t, Options{DryRun: true})
	if got := r.procs.cgroup(in.pid); got != "/"+name {
		t.Skipf("the cgroup shows as %q (another hierarchy names it)", got)
	}
	for _, spec := range []Spec{
		&KillSpec{Comm: "node", Unit: name},
		&KillSpec{Comm: "node", CgroupGlob: "/pkt-act-*.service"},
		&FreezeSpec{Comm: "node", Unit: name, For: time.Second},
	} {
		res := r.Do(t.Context(), Request{Spec: spec})
		if got := anyInts(res.Targets); len(got) != 1 || got[0] != in.pid {
			t.Errorf("%s %+v: targets %v (want only %d, not %d)", spec.Kind(), spec, got, in.pid, out.pid)
		}
	}
}
