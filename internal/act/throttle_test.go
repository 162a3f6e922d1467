package act

import (
	"bufio"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/picket-guard/picket/internal/testkit"
)

// testNS is a network namespace made for one test, with lo up and an echo
// server listening on 127.0.0.1 inside it.
type testNS struct {
	path string
	addr string
	port int
}

func newTestNS(t *testing.T) *testNS {
	t.Helper()
	needRoot(t, "creates a network namespace and writes nftables rules")
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs ip (iproute2)")
	}
	name := "pkt-act-" + strconv.Itoa(os.Getpid()) + "-" + randHex()
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Skipf("ip netns add: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "del", name).Run() })
	if out, err := exec.Command("ip", "-n", name, "link", "set", "lo", "up").CombinedOutput(); err != nil {
		t.Fatalf("lo up: %v %s", err, out)
	}
	ns := &testNS{path: "/run/netns/" + name}
	var ln net.Listener
	var err error
	ns.in(t, func() { ln, err = net.Listen("tcp", "127.0.0.1:0") })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	ns.addr = ln.Addr().String()
	ns.port = ln.Addr().(*net.TCPAddr).Port
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(c, c); c.Close() }()
		}
	}()
	return ns
}

// in runs fn on an OS thread moved into the namespace: sockets made there
// stay in it.
func (ns *testNS) in(t *testing.T, fn func()) {
	t.Helper()
	runtime.LockOSThread()
	orig, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	defer orig.Close()
	target, err := os.Open(ns.path)
	if err != nil {
		t.Fatal(err)
	}
	defer target.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		t.Fatal(err)
	}
	defer func() {
		if unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread() // else the thread dies with the goroutine
		}
	}()
	fn()
}

func (ns *testNS) dial(t *testing.T, timeout time.Duration) (net.Conn, error) {
	var c net.Conn
	var err error
	ns.in(t, func() { c, err = net.DialTimeout("tcp", ns.addr, timeout) })
	return c, err
}

// echo checks an established connection still carries data both ways.
func echo(c net.Conn, msg string) error {
	c.SetDeadline(time.Now().Add(3 * time.Second))
	if _, err := c.Write([]byte(msg)); err != nil {
		return err
	}
	buf := make([]byte, len(msg))
	if _, err := io.ReadFull(c, buf); err != nil {
		return err
	}
	if string(buf) != msg {
		return io.ErrUnexpectedEOF
	}
	return nil
}

func (ns *testNS) rules(t *testing.T) map[string]bool {
	t.Helper()
	c, done, err := nft(ns.path)
	if err != nil {
		t.Fatal(err)
	}
	defer done()
	rules, _, err := throttleRules(c)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for id := range rules {
		out[id] = true
	}
	return out
}

// TestThrottle is the thrashing web server's DROP of port 80, made safe: new connections
// fail while it lasts, one established before it keeps working, and the
// rule is gone when its time is up.
func TestThrottle(t *testing.T) {
	ns := newTestNS(t)
	c1, err := ns.dial(t, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c1.Close()
	if err := echo(c1, "before"); err != nil {
		t.Fatal(err)
	}
	state := t.TempDir()
	r := newRunner(t, Options{StateDir: state, NetNS: ns.path})
	spec := &ThrottleSpec{Port: ns.port, For: 3 * time.Second}
	if res := r.Do(t.Context(), Request{Spec: spec, DryRun: true}); res.ID != "" || len(ns.rules(t)) != 0 {
		t.Fatalf("dry run: %+v", res)
	}
	res := r.Do(t.Context(), Request{Spec: spec, Rule: "thrashing"})
	if res.Error != "" || !strings.HasPrefix(res.Result, "dropping new tcp/"+strconv.Itoa(ns.port)) {
		t.Fatalf("throttle: %+v", res)
	}
	if !ns.rules(t)[res.ID] {
		t.Fatalf("no rule %s in the namespace: %v", res.ID, ns.rules(t))
	}
	if err := echo(c1, "during"); err != nil {
		t.Errorf("the established connection broke: %v", err)
	}
	if c, err := ns.dial(t, 300*time.Millisecond); err == nil {
		c.Close()
		t.Error("a new connection got through the throttle")
	}
	if again := r.Do(t.Context(), Request{Spec: spec}); !strings.HasPrefix(again.Result, "already throttled by "+res.ID) {
		t.Errorf("a second throttle of the same port: %+v", again)
	}
	if !waitFor(5*time.Second, func() bool { return len(ns.rules(t)) == 0 }) {
		t.Fatalf("rule still there after its time: %v", ns.rules(t))
	}
	if c, err := ns.dial(t, time.Second); err != nil {
		t.Errorf("new connection after the throttle: %v", err)
	} else {
		c.Close()
	}
	if err := echo(c1, "after"); err != nil {
		t.Errorf("the established connection after: %v", err)
	}
	if !waitFor(2*time.Second, func() bool { return strings.Join(phases(journalOf(t, state), res.ID), ",") == "intent,result,revert" }) {
		t.Errorf("journal: %v", phases(journalOf(t, state), res.ID))
	}

	// Undo ends one early.
	res = r.Do(t.Context(), Request{Spec: &ThrottleSpec{Port: ns.port, For: time.Hour}})
	if res.Error != "" || !ns.rules(t)[res.ID] {
		t.Fatalf("throttle: %+v", res)
	}
	if u, err := r.Undo(t.Context(), res.ID); err != nil || !strings.Contains(u.Result, "undone: removed the rule") {
		t.Fatalf("undo: %+v %v", u, err)
	}
	if len(ns.rules(t)) != 0 {
		t.Errorf("rule left after undo: %v", ns.rules(t))
	}
	if c, err := ns.dial(t, time.Second); err != nil {
		t.Errorf("new connection after undo: %v", err)
	} else {
		c.Close()
	}
}

func TestThrottleRate(t *testing.T) {
	ns := newTestNS(t)
	r := newRunner(t, Options{NetNS: ns.path})
	res := r.Do(t.Context(), Request{Spec: &ThrottleSpec{Port: ns.port, Mode: "rate", Rate: "1/second", Burst: 1, For: time.Minute}})
	if res.Error != "" || !strings.HasPrefix(res.Result, "rate-limiting new tcp/") {
		t.Fatalf("throttle: %+v", res)
	}
	ok, failed := 0, 0
	for i := 0; i < 8; i++ {
		if c, err := ns.dial(t, 150*time.Millisecond); err == nil {
			ok++
			c.Close()
		} else {
			failed++
		}
	}
	if ok == 0 || failed == 0 {
		t.Errorf("rate 1/second: %d connections passed, %d dropped; want some of each", ok, failed)
	}
}

// TestThrottleSurvivesCrash: a picket killed with -9 while a throttle is
// on leaves the rule; the next picket's Recover re-arms it to end at its
// time, reverts one whose time passed meanwhile, and removes a rule no
// journal entry accounts for.
func TestThrottleSurvivesCrash(t *testing.T) {
	ns := newTestNS(t)
	state := t.TempDir()
	crash := func(d time.Duration) string { return crashThrottle(t, ns, state, d) }

	// The helper's throttle lasts a minute; the recovering picket's clock
	// is set so that 1.5s of it remain (however long the helper took), and
	// for the second crash so that it is over.
	id := crash(time.Minute)
	if !ns.rules(t)[id] {
		t.Fatal("the crashed picket's rule is not there")
	}
	until := actionOf(t, state, id).Until
	shift := time.Until(until.Add(-1500 * time.Millisecond))
	r := newRunner(t, Options{StateDir: state, NetNS: ns.path, Now: func() time.Time { return time.Now().Add(shift) }})
	if err := r.Recover(t.Context()); err != nil {
		t.Fatal(err)
	}
	if !ns.rules(t)[id] {
		t.Error("Recover removed a throttle whose time was not up")
	}
	if c, err := ns.dial(t, 300*time.Millisecond); err == nil {
		c.Close()
		t.Error("new connection while the recovered throttle lasts")
	}
	if !waitFor(5*time.Second, func() bool { return len(ns.rules(t)) == 0 }) {
		t.Fatalf("the recovered throttle did not end: %v", ns.rules(t))
	}
	r.Close()

	id = crash(time.Minute)
	// And a rule in picket's table that no journal knows.
	orphan := newRunner(t, Options{StateDir: t.TempDir(), NetNS: ns.path})
	if err := orphan.addThrottle("stray", &ThrottleSpec{Port: ns.port + 1}, &Undo{NetNS: ns.path, Proto: "tcp", Port: ns.port + 1}, time.Hour); err != nil {
		t.Fatal(err)
	}
	if got := ns.rules(t); !got[id] || !got["stray"] {
		t.Fatalf("rules before recover: %v", got)
	}
	later := func() time.Time { return time.Now().Add(2 * time.Minute) }
	r = newRunner(t, Options{StateDir: state, NetNS: ns.path, Now: later})
	if err := r.Recover(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := ns.rules(t); len(got) != 0 {
		t.Errorf("rules after recover: %v", got)
	}
	for _, a := range Actions(journalOf(t, state), later()) {
		if a.State != StateReverted {
			t.Errorf("%s: %s (%s)", a.ID, a.State, a.RevertResult)
		}
	}
}

func actionOf(t *testing.T, state, id string) Action {
	t.Helper()
	for _, a := range Actions(journalOf(t, state), time.Now()) {
		if a.ID == id {
			return a
		}
	}
	t.Fatalf("no action %s in the journal", id)
	return Action{}
}

// crashThrottle runs a picket (a helper process) that throttles the
// namespace's port for d and is then killed with -9: no Close, no revert.
// It returns the throttle's journal id.
func crashThrottle(t *testing.T, ns *testNS, state string, d time.Duration) string {
	t.Helper()
	cmd := exec.Command(os.Args[0])
	cmd.Env = []string{testkit.HelperEnv("throttle"), "PICKET_ACT_PORT=" + strconv.Itoa(ns.port), "PICKET_ACT_FOR=" + d.String(),
		"PICKET_ACT_STATE=" + state, "PICKET_ACT_NETNS=" + ns.path}
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(out)
	line := ""
	if sc.Scan() {
		line = sc.Text()
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	id, ok := strings.CutPrefix(line, "id ")
	if !ok {
		t.Fatalf("helper: %q", line)
	}
	return id
}

// nftList is `nft list ruleset` in the namespace, as an administrator
// would look (scripts/test installs nft; picket itself speaks netlink).
func (ns *testNS) nftList(t *testing.T) string {
	t.Helper()
	nft := testkit.Need(t, "nft", "nftables")
	out, err := exec.Command("ip", "netns", "exec", filepath.Base(ns.path), nft, "list", "ruleset").CombinedOutput()
	if err != nil {
		t.Fatalf("nft list ruleset: %v\n%s", err, out)
	}
	return string(out)
}

// TestThrottleEndsByTheKernel: a picket killed with -9 and never started
// again leaves its rule, but the throttle still ends at its time: the
// kernel expires the set element the rule matches, and new connections
// get through with no picket running.
func TestThrottleEndsByTheKernel(t *testing.T) {
	ns := newTestNS(t)
	state := t.TempDir()
	id := crashThrottle(t, ns, state, 2*time.Second)
	ended := actionOf(t, state, id).Until
	if !ns.rules(t)[id] {
		t.Fatal("the crashed picket's rule is not there")
	}
	if out := ns.nftList(t); !strings.Contains(out, "set "+setName(id)) || !strings.Contains(out, "expires") ||
		!strings.Contains(out, "meta l4proto . th dport @"+setName(id)) {
		t.Errorf("nft list ruleset does not show the throttle's set with its timeout:\n%s", out)
	}
	if time.Now().Before(ended.Add(-300 * time.Millisecond)) {
		if c, err := ns.dial(t, 300*time.Millisecond); err == nil {
			c.Close()
			t.Error("a new connection got through while the throttle lasts")
		}
	}
	time.Sleep(time.Until(ended) + 300*time.Millisecond)
	c, err := ns.dial(t, time.Second)
	if err != nil {
		t.Fatalf("no new connection after the throttle's time, with no picket to end it: %v\n%s", err, ns.nftList(t))
	}
	c.Close()
	if out := ns.nftList(t); strings.Contains(out, "expires") {
		t.Errorf("the element is still listed after its time:\n%s", out)
	}
	// The next picket removes the inert rule and its set, and journals it.
	r := newRunner(t, Options{StateDir: state, NetNS: ns.path})
	if err := r.Recover(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := ns.rules(t); len(got) != 0 {
		t.Errorf("rules after recover: %v", got)
	}
	if out := ns.nftList(t); strings.Contains(out, "table inet picket") {
		t.Errorf("picket's table after recover:\n%s", out)
	}
	if a := actionOf(t, state, id); a.State != StateReverted {
		t.Errorf("state after recover: %s", a.State)
	}
}

// TestThrottleRecoveryCapsAClockStep: the clock went back an hour between
// the crash and the restart. The re-armed throttle ends after its own
// duration from now, not an hour later.
func TestThrottleRecoveryCapsAClockStep(t *testing.T) {
	ns := newTestNS(t)
	state := t.TempDir()
	id := crashThrottle(t, ns, state, 2*time.Second)
	back := func() time.Time { return time.Now().Add(-time.Hour) }
	r := newRunner(t, Options{StateDir: state, NetNS: ns.path, Now: back})
	if err := r.Recover(t.Context()); err != nil {
		t.Fatal(err)
	}
	if !waitFor(5*time.Second, func() bool { return strings.Join(phases(journalOf(t, state), id), ",") == "intent,result,revert" }) {
		t.Fatalf("the re-armed throttle did not end within its duration: %v", phases(journalOf(t, state), id))
	}
	if got := ns.rules(t); len(got) != 0 {
		t.Errorf("rules left: %v", got)
	}
}

// Port 22 needs force: true (Validate); picket's own port is refused at
// run time, where the Runner knows it, and force: true lets both through.
func TestThrottleRefusesTheAdministratorsWayIn(t *testing.T) {
	r := newRunner(t, Options{DryRun: true, ProtectedPorts: []int{9749}})
	if res := r.Do(t.Context(), Request{Spec: &ThrottleSpec{Port: 22, For: time.Minute}}); !strings.Contains(res.Result, "port 22 is sshd's") {
		t.Errorf("port 22: %+v", res)
	}
	if res := r.Do(t.Context(), Request{Spec: &ThrottleSpec{Port: 9749, For: time.Minute}}); !strings.Contains(res.Result, "port 9749 is picket's own") {
		t.Errorf("picket's port: %+v", res)
	}
	for _, port := range []int{22, 9749} {
		if res := r.Do(t.Context(), Request{Spec: &ThrottleSpec{Port: port, For: time.Minute, Force: true}}); !strings.HasPrefix(res.Result, "would drop") {
			t.Errorf("port %d forced: %+v", port, res)
		}
	}
}
