package act

import (
	"context"
	"github.com/picket-guard/picket/internal/hostcap"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/picket-guard/picket/internal/testkit"
	"github.com/picket-guard/picket/internal/testkit/snaptest"
)

const nobody = 65534

// TestKillStorm is the imapd storm: 200 pkt-imapd under nobody (20
// of them ignoring SIGTERM), bystanders with the same name under another
// user and other names under nobody, and a protected pkt-imapd. The dry run
// names exactly the 200; the kill leaves every bystander alive.
func TestKillStorm(t *testing.T) {
	for _, v := range hostVariants(t, hostcap.Pidfd) {
		t.Run(v.name, func(t *testing.T) { testKillStorm(t, v.host) })
	}
}

// testKillStorm is TestKillStorm on a host as host describes it.
func testKillStorm(t *testing.T, host *hostcap.Set) {
	needRoot(t, "starts processes as other users and signals them")
	bin := testkit.NamedBin(t, "pkt-imapd", "pkt-other")
	imapd := filepath.Join(bin, "pkt-imapd")
	var targets, bystanders []*child
	for i := 0; i < 180; i++ {
		targets = append(targets, spawn(t, nobody, nil, imapd, "600"))
	}
	for i := 0; i < 20; i++ { // only SIGKILL ends these
		targets = append(targets, spawn(t, -1, []string{testkit.HelperEnv("ignoreterm"), "PICKET_ACT_UID=65534", "PICKET_ACT_CHILD=" + imapd}, os.Args[0]))
	}
	for i := 0; i < 5; i++ {
		bystanders = append(bystanders, spawn(t, nobody-1, nil, imapd, "600"))
		bystanders = append(bystanders, spawn(t, nobody, nil, filepath.Join(bin, "pkt-other"), "600"))
	}
	protected := spawn(t, nobody, nil, imapd, "600")
	bystanders = append(bystanders, protected)
	r := newRunner(t, Options{DryRun: true, Host: host})
	if !waitFor(5*time.Second, func() bool { // the helpers have exec'd
		for _, c := range targets {
			if p, err := r.procs.read(c.pid); err != nil || p.comm != "pkt-imapd" || p.uid != nobody {
				return false
			}
		}
		return true
	}) {
		t.Fatal("targets did not start")
	}

	state := t.TempDir()
	r = newRunner(t, Options{StateDir: state, Host: host, Protected: Protected{PIDs: []int{protected.pid}}})
	spec := &KillSpec{User: "nobody", Comm: "pkt-imapd", Signal: "TERM", Grace: time.Second, Then: "KILL"}
	snap := snaptest.Live(t)
	req := Request{Spec: spec, Rule: "ProcNumChkRed", Case: "imapd", Snapshot: snap}
	// 200 are more than the default max_targets: refused whole, not one
	// signalled, and nothing journaled.
	if res := r.Do(t.Context(), req); res.ID != "" || !strings.HasPrefix(res.Result, "refused: 200 processes match, more than max_targets (100)") {
		t.Errorf("over max_targets: %+v", res)
	}
	for _, c := range targets {
		if !c.alive() {
			t.Fatal("a kill over max_targets signalled something")
		}
	}
	spec.MaxTargets = 200
	req.DryRun = true
	dry := r.Do(t.Context(), req)
	if got, want := anyInts(dry.Targets), pidsOf(targets); !reflect.DeepEqual(got, want) {
		t.Fatalf("dry-run targets: %d pids, want the %d targets exactly\n%s", len(got), len(want), dry.Result)
	}
	if dry.ID != "" || !strings.HasPrefix(dry.Result, "would send TERM to 200 processes, then KILL after 1s to those still running") ||
		!strings.Contains(dry.Result, "protected pid") {
		t.Errorf("dry run: %+v", dry)
	}
	if es := journalOf(t, state); len(es) != 0 {
		t.Errorf("the dry run was journaled: %v", es)
	}
	for _, c := range targets {
		if !c.alive() {
			t.Fatal("the dry run killed something")
		}
	}

	req.DryRun = false
	start := time.Now()
	res := r.Do(t.Context(), req)
	t.Logf("%s in %v", res.Result, time.Since(start).Round(time.Millisecond))
	if res.Error != "" || !strings.HasPrefix(res.Result, "killed 200 pkt-imapd of nobody (TERM, KILL to 20 after 1s)") {
		t.Errorf("kill: %+v", res)
	}
	if got, want := anyInts(res.Targets), pidsOf(targets); !reflect.DeepEqual(got, want) {
		t.Errorf("targets: %d pids, want %d", len(got), len(want))
	}
	for _, c := range targets {
		if !c.waitExit(5 * time.Second) {
			t.Fatalf("target %d still running", c.pid)
		}
	}
	for _, c := range bystanders {
		if !c.alive() {
			t.Errorf("bystander %d was killed", c.pid)
		}
	}
	if got := phases(journalOf(t, state), res.ID); strings.Join(got, ",") != "intent,result" {
		t.Errorf("journal: %v", got)
	}
}

// TestKillUntilRespawning is PIKT's loop (kill, ps again, until none
// remain) against a parent that respawns its children: 5 at a time, 15 in
// all, then it gives up; and against one that never gives up, where the
// loop must stop by itself.
func TestKillUntilRespawning(t *testing.T) {
	needRoot(t, "the respawning parent is a helper process")
	bin := testkit.NamedBin(t, "pkt-child")
	childPath := filepath.Join(bin, "pkt-child")
	parent := func(limit int) *child {
		c := spawn(t, -1, []string{testkit.HelperEnv("respawn"), "PICKET_ACT_CHILD=" + childPath, "PICKET_ACT_KEEP=5", "PICKET_ACT_CAP=" + strconv.Itoa(limit)}, os.Args[0])
		return c
	}
	r := newRunner(t, Options{})
	count := func() int {
		n := 0
		all, _ := r.procs.all()
		for _, p := range all {
			if p.comm == "pkt-child" && !p.gone() {
				n++
			}
		}
		return n
	}

	p := parent(15)
	if !waitFor(5*time.Second, func() bool { return count() == 5 }) {
		t.Fatalf("%d children, want 5", count())
	}
	spec := &KillSpec{Comm: "pkt-child", Signal: "KILL", Until: &Until{Below: 1}, MaxTries: 10, MaxTime: 20 * time.Second}
	res := r.Do(t.Context(), Request{Spec: spec, Rule: "respawn"})
	t.Logf("%s", res.Result)
	if res.Error != "" || !strings.Contains(res.Result, "none remain") || len(res.Targets) != 15 {
		t.Errorf("finite respawn: %+v (%d targets)", res, len(res.Targets))
	}
	if n := count(); n != 0 {
		t.Errorf("%d children left", n)
	}
	if !p.alive() {
		t.Error("the parent was killed: it does not match the selector")
	}

	parent(0)
	if !waitFor(5*time.Second, func() bool { return count() == 5 }) {
		t.Fatalf("%d children, want 5", count())
	}
	spec = &KillSpec{Comm: "pkt-child", Signal: "KILL", Until: &Until{Below: 1}, MaxTries: 3, MaxTime: 10 * time.Second}
	start := time.Now()
	res = r.Do(t.Context(), Request{Spec: spec, Rule: "respawn-forever"})
	t.Logf("%s", res.Result)
	if res.Error == "" || !strings.HasPrefix(res.Result, "gave up after 3 rounds") || time.Since(start) > 10*time.Second {
		t.Errorf("endless respawn: %+v after %v", res, time.Since(start))
	}
}

// TestKillScopeGroup: scope group takes the whole process group; a group
// that holds a protected process is refused whole.
func TestKillScopeGroup(t *testing.T) {
	needRoot(t, "signals a process group of helpers")
	bin := testkit.NamedBin(t, "pkt-leader", "pkt-mate")
	script := "exec_mate() { \"$1\" 600 & }; exec_mate " + filepath.Join(bin, "pkt-mate") + "; exec " + filepath.Join(bin, "pkt-leader") + " 600"
	start := func() (*child, int) {
		c := spawn(t, -1, nil, "/bin/sh", "-c", script)
		var mate int
		r := newRunner(t, Options{DryRun: true})
		waitFor(5*time.Second, func() bool {
			all, _ := r.procs.all()
			for _, p := range all {
				if p.comm == "pkt-mate" && p.pgrp == c.pid {
					mate = p.pid
				}
			}
			lead, err := r.procs.read(c.pid)
			return mate != 0 && err == nil && lead.comm == "pkt-leader"
		})
		if mate == 0 {
			t.Fatal("group did not start")
		}
		return c, mate
	}
	lead, mate := start()
	r := newRunner(t, Options{})
	res := r.Do(t.Context(), Request{Spec: &KillSpec{Comm: "pkt-leader", Scope: "group", Signal: "KILL"}})
	if got := anyInts(res.Targets); !reflect.DeepEqual(got, []int{lead.pid, mate}) || res.Error != "" {
		t.Errorf("group kill: %+v, want pids %d and %d", res, lead.pid, mate)
	}
	if !lead.waitExit(5*time.Second) || !waitFor(5*time.Second, func() bool { return !r.alive(proc{pid: mate}) && syscall.Kill(mate, 0) != nil }) {
		t.Error("the group is not gone")
	}

	lead, mate = start()
	r = newRunner(t, Options{Protected: Protected{PIDs: []int{mate}}})
	res = r.Do(t.Context(), Request{Spec: &KillSpec{Comm: "pkt-leader", Scope: "group", Signal: "KILL"}})
	if len(res.Targets) != 0 || !strings.Contains(res.Result, "its group holds pid") {
		t.Errorf("group with a protected member: %+v", res)
	}
	time.Sleep(100 * time.Millisecond)
	if !lead.alive() || syscall.Kill(mate, 0) != nil {
		t.Error("a group with a protected member was signalled")
	}
}

// TestKillSnapshotAnchor: the first selection starts from the rule's
// snapshot, so a process started after it is not in the first round, and
// a fixture root signals nothing.
func TestKillSnapshotAnchor(t *testing.T) {
	bin := testkit.NamedBin(t, "pkt-late")
	early := spawn(t, -1, nil, filepath.Join(bin, "pkt-late"), "600")
	r := newRunner(t, Options{DryRun: true})
	waitFor(5*time.Second, func() bool { p, err := r.procs.read(early.pid); return err == nil && p.comm == "pkt-late" })
	snap := snaptest.Live(t)
	late := spawn(t, -1, nil, filepath.Join(bin, "pkt-late"), "600")
	waitFor(5*time.Second, func() bool { p, err := r.procs.read(late.pid); return err == nil && p.comm == "pkt-late" })
	res := r.Do(t.Context(), Request{Spec: &KillSpec{Comm: "pkt-late"}, Snapshot: snap})
	if got := anyInts(res.Targets); !reflect.DeepEqual(got, []int{early.pid}) {
		t.Errorf("targets %v, want only %d (the one the rule saw)", got, early.pid)
	}
	res = r.Do(t.Context(), Request{Spec: &KillSpec{Comm: "pkt-late"}})
	if got := anyInts(res.Targets); !reflect.DeepEqual(got, []int{early.pid, late.pid}) {
		t.Errorf("without a snapshot: %v", got)
	}
	res = r.Do(t.Context(), Request{Spec: &KillSpec{Comm: "pkt-late", Youngest: 1}})
	if got := anyInts(res.Targets); !reflect.DeepEqual(got, []int{late.pid}) {
		t.Errorf("youngest 1: %v, want %d", got, late.pid)
	}
	res = r.Do(t.Context(), Request{Spec: &KillSpec{Comm: "pkt-late", OlderThan: time.Hour}})
	if len(res.Targets) != 0 {
		t.Errorf("older_than 1h: %v", res.Targets)
	}
	sleepPath, _ := exec.LookPath("sleep")
	sleepExe, _ := filepath.EvalSymlinks(sleepPath)
	res = r.Do(t.Context(), Request{Spec: &KillSpec{PID: strconv.Itoa(late.pid) + " " + strconv.Itoa(early.pid), Cmdline: "pkt-late 600$", Exe: sleepExe, PPID: strconv.Itoa(os.Getpid())}})
	if got := anyInts(res.Targets); !reflect.DeepEqual(got, []int{early.pid, late.pid}) {
		t.Errorf("pid+cmdline+exe+ppid: %v (%s)", got, res.Result)
	}
	res = r.Do(t.Context(), Request{Spec: &KillSpec{PID: strconv.Itoa(late.pid), Exe: "/usr/bin/other"}})
	if len(res.Targets) != 0 {
		t.Errorf("another exe matched: %v", res.Targets)
	}
	fr := newRunner(t, Options{Root: fixtureRoot(t)})
	if res := fr.Do(t.Context(), Request{Spec: &KillSpec{Comm: "pkt-late"}}); res.ID != "" || len(res.Targets) != 0 {
		t.Errorf("fixture root: %+v", res)
	}
	if !early.alive() || !late.alive() {
		t.Error("a dry run killed")
	}
}

// TestKillWarnHook: warn calls the hook with the targets, waits, selects
// again: a target that exited meanwhile is not counted.
func TestKillWarnHook(t *testing.T) {
	bin := testkit.NamedBin(t, "pkt-warned")
	a := spawn(t, -1, nil, filepath.Join(bin, "pkt-warned"), "600")
	b := spawn(t, -1, nil, filepath.Join(bin, "pkt-warned"), "600")
	var warned []int
	r := newRunner(t, Options{Warn: func(ctx context.Context, req Request, pids []int) {
		warned = pids
		syscall.Kill(b.pid, syscall.SIGKILL) // b takes the hint
	}})
	waitFor(5*time.Second, func() bool { p, err := r.procs.read(b.pid); return err == nil && p.comm == "pkt-warned" })
	res := r.Do(t.Context(), Request{Spec: &KillSpec{Comm: "pkt-warned", Warn: 100 * time.Millisecond}})
	if !reflect.DeepEqual(warned, []int{a.pid, b.pid}) && !reflect.DeepEqual(warned, []int{b.pid, a.pid}) {
		t.Errorf("warned %v", warned)
	}
	if got := anyInts(res.Targets); !reflect.DeepEqual(got, []int{a.pid}) || !a.waitExit(5*time.Second) {
		t.Errorf("after the warning: %+v", res)
	}
}

// TestKillScopeCgroup: scope cgroup takes every process of the match's
// cgroup (here a v2 cgroup the test makes), and the cgroup selector
// matches by path; the root cgroup is never a scope.
func TestKillScopeCgroup(t *testing.T) {
	needRoot(t, "creates a cgroup")
	v2, _ := cgroupMounts()
	if v2 == "" {
		t.Skip("no cgroup2 mount on this host")
	}
	dir := makeCgroup(t, v2)
	bin := testkit.NamedBin(t, "pkt-cg", "pkt-cgmate")
	a := spawn(t, -1, nil, filepath.Join(bin, "pkt-cg"), "600")
	b := spawn(t, -1, nil, filepath.Join(bin, "pkt-cgmate"), "600")
	outside := spawn(t, -1, nil, filepath.Join(bin, "pkt-cg"), "600")
	moveInto(t, dir, []int{a.pid, b.pid})
	r := newRunner(t, Options{})
	cg := "/" + filepath.Base(dir)
	if got := r.procs.cgroup(a.pid); got != cg {
		t.Skipf("the cgroup shows as %q, not %q (nested hierarchy)", got, cg)
	}
	dry := r.Do(t.Context(), Request{Spec: &KillSpec{Cgroup: cg}, DryRun: true})
	if got := anyInts(dry.Targets); !reflect.DeepEqual(got, sortedCopy([]int{a.pid, b.pid})) {
		t.Errorf("cgroup selector: %v", got)
	}
	// The process outside any cgroup of its own is refused as a scope: its
	// cgroup is the root, or (on a hybrid host where the test runs in a v1
	// memory cgroup, which the one reader's rule then names) the test's own
	// cgroup, which holds picket.
	res := r.Do(t.Context(), Request{Spec: &KillSpec{Comm: "pkt-cg", Scope: "cgroup", Signal: "KILL"}})
	refusedOutside := strings.Contains(res.Result, "root cgroup") || strings.Contains(res.Result, "picket or its ancestor")
	if got := anyInts(res.Targets); !reflect.DeepEqual(got, sortedCopy([]int{a.pid, b.pid})) || !refusedOutside {
		t.Errorf("cgroup scope: %+v", res)
	}
	if !a.waitExit(5*time.Second) || !b.waitExit(5*time.Second) {
		t.Error("the cgroup's processes are not gone")
	}
	if !outside.alive() {
		t.Error("a process in the root cgroup was killed")
	}
}

// TestKillJournalsWhoItKilled: the journal says who each target was —
// pid, user, command, start time and command line — and the selector, so
// that after the fact "killed 3" reads "killed 3 pkt-who of nobody".
func TestKillJournalsWhoItKilled(t *testing.T) {
	needRoot(t, "starts processes as nobody and signals them")
	bin := testkit.NamedBin(t, "pkt-who")
	var cs []*child
	for i := 0; i < 3; i++ {
		cs = append(cs, spawn(t, nobody, nil, filepath.Join(bin, "pkt-who"), "600", strconv.Itoa(i)))
	}
	state := t.TempDir()
	r := newRunner(t, Options{StateDir: state})
	if !waitFor(5*time.Second, func() bool {
		for _, c := range cs {
			if p, err := r.procs.read(c.pid); err != nil || p.comm != "pkt-who" {
				return false
			}
		}
		return true
	}) {
		t.Fatal("targets did not start")
	}
	started := time.Now()
	res := r.Do(t.Context(), Request{Spec: &KillSpec{Comm: "pkt-who", User: "nobody", Signal: "KILL"}, Rule: "who"})
	if res.Error != "" || res.Result != "killed 3 pkt-who of nobody (KILL)" {
		t.Fatalf("kill: %+v", res)
	}
	as, err := TailActions(state, 1, time.Now())
	if err != nil || len(as) != 1 {
		t.Fatalf("journal: %v %v", as, err)
	}
	a := as[0]
	if !strings.Contains(string(a.Spec), `"comm":"pkt-who"`) || !strings.Contains(string(a.Spec), `"user":"nobody"`) {
		t.Errorf("the selector is not journaled: %s", a.Spec)
	}
	if len(a.Procs) != 3 {
		t.Fatalf("procs: %+v", a.Procs)
	}
	for i, p := range a.Procs {
		if p.PID != cs[i].pid || p.User != "nobody" || p.UID != nobody || p.Comm != "pkt-who" ||
			p.Cmdline != filepath.Join(bin, "pkt-who")+" 600 "+strconv.Itoa(i) ||
			p.Start.After(started) || started.Sub(p.Start) > time.Minute {
			t.Errorf("target %d: %+v", i, p)
		}
	}
	if Describe(a.Procs) != "3 pkt-who of nobody" {
		t.Errorf("Describe: %q", Describe(a.Procs))
	}
	intent := journalOf(t, state)[0]
	if intent.Phase != PhaseIntent || len(intent.Procs) != 3 {
		t.Errorf("the intent, written before the signals, does not name them: %+v", intent)
	}
}

// A selection over max_targets is refused whole: a selector that matches
// too much signals nothing, with a result that says how to go on.
func TestKillMaxTargets(t *testing.T) {
	needRoot(t, "signals processes")
	bin := testkit.NamedBin(t, "pkt-cap")
	var cs []*child
	for i := 0; i < 5; i++ {
		cs = append(cs, spawn(t, -1, nil, filepath.Join(bin, "pkt-cap"), "600"))
	}
	for _, c := range cs {
		testkit.WaitComm(t, c.pid, "pkt-cap")
	}
	state := t.TempDir()
	r := newRunner(t, Options{StateDir: state})
	res := r.Do(t.Context(), Request{Spec: &KillSpec{Comm: "pkt-cap", Signal: "KILL", MaxTargets: 4}, Rule: "cap"})
	if res.ID != "" || !strings.Contains(res.Result, "5 processes match, more than max_targets (4): nothing signalled") {
		t.Errorf("over the cap: %+v", res)
	}
	for _, c := range cs {
		if !c.alive() {
			t.Fatal("a refused kill signalled a process")
		}
	}
	if res := r.Do(t.Context(), Request{Spec: &KillSpec{Comm: "pkt-cap", Signal: "KILL", MaxTargets: 5}, Rule: "cap"}); res.Error != "" || len(res.Targets) != 5 {
		t.Errorf("at the cap: %+v", res)
	}
}
