package act

import (
	"context"
	"fmt"
	"github.com/picket-guard/picket/internal/hostcap"
	"os"
	"os/exec"
	"os/signal"
	"sort"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/picket-guard/picket/internal/testkit"
)

// The test binary doubles as the helper processes some tests need
// (testkit.Main): a parent that respawns its children, a process that
// ignores SIGTERM, a picket that throttles and is then killed with -9, and
// a daemon that drops root without exec.
func TestMain(m *testing.M) {
	testkit.Main(m, map[string]func() int{
		"respawn":    func() int { respawnHelper(); return 0 },
		"ignoreterm": func() int { ignoreTermHelper(); return 0 },
		"throttle":   func() int { throttleHelper(); return 0 },
		"dropuid":    func() int { dropUIDHelper(); return 0 },
		"forkloop":   func() int { forkLoopHelper(); return 0 },
		"execstatus": execStatusHelper,
	})
}

// hostVariant is a host a test runs on: this one as probed, and the same
// with a feature switched off, so the fallback path is the one taken.
type hostVariant struct {
	name string
	host *hostcap.Set
}

// hostVariants are this host as probed ("probed") and as a host without
// feature ("without FEATURE"): a test run on both proves the fallback
// keeps every assertion.
func hostVariants(t *testing.T, feature hostcap.Name) []hostVariant {
	t.Helper()
	h := hostcap.Probe(hostcap.Options{})
	if !h.Has(feature) {
		t.Logf("this host has no %s: both variants run the fallback", feature)
	}
	return []hostVariant{{"probed", h}, {"without " + string(feature), h.Without(feature)}}
}

func needRoot(t *testing.T, why string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skipf("needs root (%s); CI runs as root", why)
	}
}

func newRunner(t *testing.T, opts Options) *Runner {
	t.Helper()
	if opts.StateDir == "" && !opts.DryRun {
		opts.StateDir = t.TempDir()
	}
	r, err := NewRunner(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// child is a process a test started; done closes once it was reaped.
type child struct {
	cmd  *exec.Cmd
	pid  int
	done chan struct{}
}

func (c *child) alive() bool {
	select {
	case <-c.done:
		return false
	default:
		return true
	}
}

func (c *child) waitExit(d time.Duration) bool {
	select {
	case <-c.done:
		return true
	case <-time.After(d):
		return false
	}
}

// spawn starts path with args, as uid (and gid) when uid >= 0, in a
// process group of its own; the test's cleanup kills the group.
func spawn(t *testing.T, uid int, env []string, path string, args ...string) *child {
	t.Helper()
	cmd := exec.Command(path, args...)
	cmd.Env = env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if uid >= 0 {
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: uint32(uid), Gid: uint32(uid)}
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", path, err)
	}
	c := &child{cmd: cmd, pid: cmd.Process.Pid, done: make(chan struct{})}
	go func() { cmd.Wait(); close(c.done) }()
	t.Cleanup(func() {
		syscall.Kill(-c.pid, syscall.SIGKILL)
		c.waitExit(5 * time.Second)
	})
	return c
}

func pidsOf(cs ...[]*child) []int {
	var out []int
	for _, l := range cs {
		for _, c := range l {
			out = append(out, c.pid)
		}
	}
	sort.Ints(out)
	return out
}

func anyInts(xs []any) []int {
	out := make([]int, 0, len(xs))
	for _, x := range xs {
		switch v := x.(type) {
		case int:
			out = append(out, v)
		case float64:
			out = append(out, int(v))
		}
	}
	sort.Ints(out)
	return out
}

// waitFor polls cond every 20ms for up to d.
func waitFor(d time.Duration, cond func() bool) bool {
	for deadline := time.Now().Add(d); ; time.Sleep(20 * time.Millisecond) {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
	}
}

func journalOf(t *testing.T, dir string) []Entry {
	t.Helper()
	es, err := ReadJournal(dir)
	if err != nil {
		t.Fatal(err)
	}
	return es
}

func phases(es []Entry, id string) []string {
	var out []string
	for _, e := range es {
		if e.ID == id {
			out = append(out, e.Phase)
		}
	}
	return out
}

// respawnHelper keeps PICKET_ACT_KEEP children of PICKET_ACT_CHILD alive,
// starting a new one whenever one exits, PICKET_ACT_CAP children in all
// (0: forever): an inetd spawning imapds.
func respawnHelper() {
	path := os.Getenv("PICKET_ACT_CHILD")
	keep, _ := strconv.Atoi(os.Getenv("PICKET_ACT_KEEP"))
	limit, _ := strconv.Atoi(os.Getenv("PICKET_ACT_CAP"))
	exited := make(chan struct{}, 1024)
	spawned := 0
	start := func() {
		cmd := exec.Command(path, "600")
		if cmd.Start() != nil {
			return
		}
		spawned++
		go func() { cmd.Wait(); exited <- struct{}{} }()
	}
	for i := 0; i < keep; i++ {
		start()
	}
	fmt.Println("ready")
	for range exited {
		if limit == 0 || spawned < limit {
			start()
		}
	}
}

// ignoreTermHelper becomes PICKET_ACT_CHILD as PICKET_ACT_UID with SIGTERM
// ignored (an ignored disposition survives exec): a process that only
// SIGKILL ends.
func ignoreTermHelper() {
	signal.Ignore(syscall.SIGTERM)
	uid, _ := strconv.Atoi(os.Getenv("PICKET_ACT_UID"))
	if err := syscall.Setgid(uid); err != nil {
		os.Exit(3)
	}
	if err := syscall.Setuid(uid); err != nil {
		os.Exit(3)
	}
	path := os.Getenv("PICKET_ACT_CHILD")
	syscall.Exec(path, []string{path, "600"}, nil)
	os.Exit(4)
}

// dropUIDHelper names itself PICKET_ACT_COMM, then becomes PICKET_ACT_UID
// without exec, as a daemon dropping root does: the kernel makes it
// non-dumpable, so its /proc/PID is root's (task_dump_owner) and only
// status tells its uid.
func dropUIDHelper() {
	if err := os.WriteFile("/proc/self/comm", []byte(os.Getenv("PICKET_ACT_COMM")), 0); err != nil {
		os.Exit(3)
	}
	uid, _ := strconv.Atoi(os.Getenv("PICKET_ACT_UID"))
	if err := syscall.Setgid(uid); err != nil {
		os.Exit(3)
	}
	if err := syscall.Setuid(uid); err != nil {
		os.Exit(3)
	}
	time.Sleep(10 * time.Minute)
}

// throttleHelper is a picket that throttles a port in a namespace, says
// its journal id, and waits to be killed with -9.
func throttleHelper() {
	port, _ := strconv.Atoi(os.Getenv("PICKET_ACT_PORT"))
	d, _ := time.ParseDuration(os.Getenv("PICKET_ACT_FOR"))
	r, err := NewRunner(Options{StateDir: os.Getenv("PICKET_ACT_STATE"), NetNS: os.Getenv("PICKET_ACT_NETNS")})
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	res := r.Do(context.Background(), Request{Spec: &ThrottleSpec{Port: port, For: d}, Rule: "helper"})
	if res.Error != "" {
		fmt.Println("error", res.Error)
		os.Exit(1)
	}
	fmt.Println("id", res.ID)
	select {}
}
