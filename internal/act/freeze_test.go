package act

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/procfs"

	"github.com/picket-guard/picket/internal/testkit"
)

// tree starts `sh` with two sleeping children and returns the three pids,
// parent first.
func tree(t *testing.T, r *Runner) (*child, []int) {
	t.Helper()
	sh := spawn(t, -1, nil, "/bin/sh", "-c", "sleep 600 & sleep 600 & wait")
	var pids []int
	if !waitFor(5*time.Second, func() bool {
		top, err := r.procs.read(sh.pid)
		if err != nil {
			return false
		}
		ps, _ := r.descendants(top)
		pids = pidList(ps)
		return len(pids) == 3
	}) {
		t.Fatalf("tree did not start: %v", pids)
	}
	return sh, pids
}

func states(r *Runner, pids []int) string {
	var b strings.Builder
	for _, pid := range pids {
		p, err := r.procs.read(pid)
		if err != nil {
			b.WriteString("-")
			continue
		}
		b.WriteString(p.state)
	}
	return b.String()
}

// TestFreezeSigstop: a tree without a cgroup of its own is stopped with
// SIGSTOP (state T) and continued when its time is up.
func TestFreezeSigstop(t *testing.T) {
	state := t.TempDir()
	r := newRunner(t, Options{StateDir: state})
	sh, pids := tree(t, r)
	res := r.Do(t.Context(), Request{Spec: &FreezeSpec{PID: strconv.Itoa(sh.pid), Tree: true, For: 1500 * time.Millisecond}})
	if res.Error != "" || !strings.Contains(res.Result, "froze 3 processes (sigstop)") {
		t.Fatalf("freeze: %+v", res)
	}
	if got := anyInts(res.Targets); !reflect.DeepEqual(got, sortedCopy(pids)) {
		t.Errorf("targets %v, want %v", got, pids)
	}
	if !waitFor(2*time.Second, func() bool { return states(r, pids) == "TTT" }) {
		t.Errorf("states %s, want TTT", states(r, pids))
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if err := r.Wait(ctx); err != nil {
		t.Errorf("Wait: %v", err)
	}
	if s := states(r, pids); strings.Contains(s, "T") {
		t.Errorf("not thawed after Wait: states %s", s)
	}
	if !waitFor(2*time.Second, func() bool { return strings.Join(phases(journalOf(t, state), res.ID), ",") == "intent,result,revert" }) {
		t.Errorf("journal: %v", phases(journalOf(t, state), res.ID))
	}
}

// TestFreezeCgroup2 puts the tree in a v2 cgroup of its own: it is frozen
// through cgroup.freeze, and thawed by undo.
func TestFreezeCgroup2(t *testing.T) {
	needRoot(t, "creates a cgroup")
	v2, _ := cgroupMounts()
	if v2 == "" {
		t.Skip("no cgroup2 mount on this host")
	}
	dir := makeCgroup(t, v2)
	state := t.TempDir()
	r := newRunner(t, Options{StateDir: state})
	sh, pids := tree(t, r)
	moveInto(t, dir, pids)
	res := r.Do(t.Context(), Request{Spec: &FreezeSpec{PID: strconv.Itoa(sh.pid), Tree: true, For: time.Minute}})
	if res.Error != "" || !strings.Contains(res.Result, "(cgroup2)") {
		t.Fatalf("freeze: %+v", res)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "cgroup.events")); !strings.Contains(string(b), "frozen 1") {
		t.Errorf("cgroup.events: %s", b)
	}
	if _, err := r.Undo(t.Context(), res.ID); err != nil {
		t.Fatal(err)
	}
	if !waitFor(2*time.Second, func() bool {
		b, _ := os.ReadFile(filepath.Join(dir, "cgroup.events"))
		return strings.Contains(string(b), "frozen 0")
	}) {
		t.Error("not thawed")
	}
}

// TestFreezeV1 puts the tree in a v1 freezer cgroup of its own.
func TestFreezeV1(t *testing.T) {
	needRoot(t, "creates a cgroup")
	_, v1 := cgroupMounts()
	if v1 == "" {
		t.Skip("no v1 freezer hierarchy on this host")
	}
	dir := makeCgroup(t, v1)
	r := newRunner(t, Options{})
	sh, pids := tree(t, r)
	if m, _ := r.freezeMethod(proc{pid: sh.pid}, nil); m == freezeCgroup2 {
		t.Skip("the test's tree has a v2 cgroup of its own")
	}
	moveInto(t, dir, pids)
	res := r.Do(t.Context(), Request{Spec: &FreezeSpec{PID: strconv.Itoa(sh.pid), Tree: true, For: 500 * time.Millisecond}})
	if res.Error != "" || !strings.Contains(res.Result, "(freezer)") {
		t.Fatalf("freeze: %+v", res)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "freezer.state")); strings.TrimSpace(string(b)) != "FROZEN" {
		t.Errorf("freezer.state %s", b)
	}
	if !waitFor(3*time.Second, func() bool {
		b, _ := os.ReadFile(filepath.Join(dir, "freezer.state"))
		return strings.TrimSpace(string(b)) == "THAWED"
	}) {
		t.Error("not thawed after its time")
	}
}

// TestFreezeRefusesProtected: a tree holding picket (here: the test
// itself, its parent's tree) is refused whole.
func TestFreezeRefusesProtected(t *testing.T) {
	r := newRunner(t, Options{})
	res := r.Do(t.Context(), Request{Spec: &FreezeSpec{PID: strconv.Itoa(os.Getppid()), Tree: true, For: time.Second}})
	if !strings.HasPrefix(res.Result, "refused") || res.ID != "" {
		t.Errorf("freeze of picket's parent: %+v", res)
	}
}

func sortedCopy(x []int) []int {
	out := append([]int(nil), x...)
	sort.Ints(out)
	return out
}

func cgroupMounts() (v2, v1 string) {
	mounts, _ := procfs.GetMounts()
	for _, m := range mounts {
		if m.FSType == "cgroup2" && v2 == "" {
			v2 = m.MountPoint
		}
		if _, ok := m.SuperOptions["freezer"]; ok && m.FSType == "cgroup" && v1 == "" {
			v1 = m.MountPoint
		}
	}
	return v2, v1
}

func makeCgroup(t *testing.T, mount string) string {
	t.Helper()
	dir := filepath.Join(mount, "pkt-act-test-"+strconv.Itoa(os.Getpid()))
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Skipf("cannot create a cgroup: %v", err)
	}
	t.Cleanup(func() {
		// The processes are killed by spawn's cleanup, which runs first
		// (cleanups run last-in first-out); wait until the cgroup is empty.
		waitFor(5*time.Second, func() bool { return os.Remove(dir) == nil })
	})
	return dir
}

func moveInto(t *testing.T, dir string, pids []int) {
	t.Helper()
	t.Cleanup(func() { // a failed test must not leave a frozen tree behind (v1 tasks die only once thawed)
		os.WriteFile(filepath.Join(dir, "cgroup.freeze"), []byte("0"), 0)
		os.WriteFile(filepath.Join(dir, "freezer.state"), []byte("THAWED"), 0)
	})
	for _, pid := range pids {
		if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0); err != nil {
			t.Fatalf("move %d into %s: %v", pid, dir, err)
		}
	}
}

// A freeze journals who it froze, as a kill does.
func TestFreezeJournalsWhoItFroze(t *testing.T) {
	state := t.TempDir()
	r := newRunner(t, Options{StateDir: state})
	sh, pids := tree(t, r)
	for _, pid := range pids {
		if pid != sh.pid {
			testkit.WaitComm(t, pid, "sleep") // forked, and exec'd
		}
	}
	res := r.Do(t.Context(), Request{Spec: &FreezeSpec{PID: strconv.Itoa(sh.pid), Tree: true, For: time.Hour}})
	if res.Error != "" {
		t.Fatal(res)
	}
	defer r.Undo(t.Context(), res.ID)
	es := journalOf(t, state)
	if es[0].Phase != PhaseIntent || len(es[0].Procs) != 3 {
		t.Fatalf("intent: %+v", es[0])
	}
	comms := map[string]int{}
	for _, p := range es[0].Procs {
		comms[p.Comm]++
		if !slices.Contains(pids, p.PID) || p.Start.IsZero() {
			t.Errorf("target %+v", p)
		}
	}
	if comms["sh"] != 1 || comms["sleep"] != 2 {
		t.Errorf("targets by command: %v", comms)
	}
}
