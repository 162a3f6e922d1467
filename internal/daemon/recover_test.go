package daemon

import (
	"bufio"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/nftables"

	"github.com/picket-guard/picket/internal/act"
	"github.com/picket-guard/picket/internal/collect"
	"github.com/picket-guard/picket/internal/history"
	"github.com/picket-guard/picket/internal/rules"
	"github.com/picket-guard/picket/internal/testkit"
)

// The test binary doubles as a picket that throttles a port and is then
// killed with -9 (testkit.Main).
func TestMain(m *testing.M) {
	testkit.Main(m, map[string]func() int{"throttle": throttleHelper})
}

func throttleHelper() int {
	d, _ := time.ParseDuration(os.Getenv("PICKET_DAEMON_FOR"))
	r, err := act.NewRunner(act.Options{StateDir: os.Getenv("PICKET_DAEMON_STATE"), NetNS: os.Getenv("PICKET_DAEMON_NETNS")})
	if err != nil {
		fmt.Println("error", err)
		return 1
	}
	res := r.Do(context.Background(), act.Request{Spec: &act.ThrottleSpec{Port: 8080, For: d}, Rule: "helper"})
	if res.Error != "" {
		fmt.Println("error", res.Error)
		return 1
	}
	fmt.Println("id", res.ID)
	select {}
}

// testNetNS makes a network namespace for one test and returns its file.
func testNetNS(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates a network namespace and writes nftables rules; CI runs as root")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs ip (iproute2)")
	}
	var b [3]byte
	rand.Read(b[:])
	name := fmt.Sprintf("pkt-daemon-%d-%x", os.Getpid(), b)
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Skipf("ip netns add: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "del", name).Run() })
	return "/run/netns/" + name
}

// picketRules counts the rules in picket's nftables table in netns.
func picketRules(t *testing.T, netns string) int {
	t.Helper()
	f, err := os.Open(netns)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	c, err := nftables.New(nftables.WithNetNSFd(int(f.Fd())))
	if err != nil {
		t.Fatal(err)
	}
	tables, err := c.ListTablesOfFamily(nftables.TableFamilyINet)
	if err != nil {
		t.Fatal(err)
	}
	for _, tb := range tables {
		if tb.Name == "picket" {
			rs, _ := c.GetRules(tb, &nftables.Chain{Name: "input", Table: tb})
			return len(rs)
		}
	}
	return 0
}

// crashThrottle runs the helper: a picket that throttles port 8080 in
// netns for d and dies by SIGKILL. It returns the journal id.
func crashThrottle(t *testing.T, state, netns string, d time.Duration) string {
	t.Helper()
	cmd := exec.Command(os.Args[0])
	cmd.Env = []string{testkit.HelperEnv("throttle"), "PICKET_DAEMON_FOR=" + d.String(), "PICKET_DAEMON_STATE=" + state, "PICKET_DAEMON_NETNS=" + netns}
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

func actionState(t *testing.T, state, id string) string {
	t.Helper()
	as, _ := act.TailActions(state, 0, time.Now())
	for _, a := range as {
		if a.ID == id {
			return a.State
		}
	}
	t.Fatalf("no action %s in the journal", id)
	return ""
}

// A restart whose configuration no longer loads still settles the journal
// first: the crashed picket's expired throttle is reverted (its rule and
// set removed, the revert journaled) though New fails on the config.
func TestRecoveryNeedsNoConfig(t *testing.T) {
	netns := testNetNS(t)
	state := t.TempDir()
	id := crashThrottle(t, state, netns, time.Second)
	if picketRules(t, netns) != 1 {
		t.Fatal("the crashed picket left no rule")
	}
	time.Sleep(1200 * time.Millisecond) // its time is up; nobody was there to revert it
	broken := func(string) (*rules.Config, string, error) {
		return nil, "", errors.New("picket.yaml:3:7: unknown field \"iff\"")
	}
	_, err := New(Options{LoadConfig: broken, StateDir: state, NetNS: netns, Stderr: io.Discard, Listen: "off", NoProtect: true})
	if err == nil || !strings.Contains(err.Error(), "unknown field") {
		t.Fatalf("New = %v, want the config error", err)
	}
	if n := picketRules(t, netns); n != 0 {
		t.Errorf("%d rules left in picket's table after a restart with a broken config", n)
	}
	if s := actionState(t, state, id); s != act.StateReverted {
		t.Errorf("the throttle is %s, want reverted", s)
	}
	released(t, state)
}

// damage overwrites every page of a bbolt file but its two meta pages with
// garbage: the file opens, and the first read of a bucket hits a damaged
// page.
func damage(t *testing.T, path string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, _ := f.Stat()
	page := int64(os.Getpagesize())
	junk := make([]byte, fi.Size()-2*page)
	rand.Read(junk)
	if _, err := f.WriteAt(junk, 2*page); err != nil {
		t.Fatal(err)
	}
}

// A damaged history.db does not stop the daemon: it is moved aside with a
// log line, and picket starts with an empty history and keeps recording.
func TestDamagedHistoryIsSetAside(t *testing.T) {
	t.Setenv("GOMEMLIMIT", "off")
	state := t.TempDir()
	p := filepath.Join(state, "history.db")
	hs, err := history.Open(p, history.Options{})
	if err != nil {
		t.Fatal(err)
	}
	col, err := collect.New(collect.Options{})
	if err != nil {
		t.Fatal(err)
	}
	snap, _ := col.Collect(t.Context(), collect.Full)
	for i := 0; i < 3; i++ {
		snap.Time = snap.Time.Add(time.Second)
		if err := hs.Record(snap); err != nil {
			t.Fatal(err)
		}
	}
	hs.Close()
	damage(t, p)
	if err := history.Check(p); !errors.Is(err, history.ErrCorrupt) {
		t.Fatalf("Check of the damaged file = %v", err)
	}

	var logs strings.Builder
	d, err := New(Options{LoadConfig: loader(cfgOK), StateDir: state, Stderr: &syncWriter{w: &logs}, Listen: "off", NoProtect: true, Interval: time.Second})
	if err != nil {
		t.Fatalf("New with a damaged history: %v", err)
	}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx, nil) }()
	deadline := time.Now().Add(20 * time.Second)
	for d.Health().LastCollection.IsZero() && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(1500 * time.Millisecond) // a second look records too
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), "history is damaged: moved aside") {
		t.Errorf("no log line about the damaged history:\n%s", logs.String())
	}
	aside, _ := filepath.Glob(p + ".damaged-*")
	if len(aside) != 1 {
		t.Errorf("moved aside: %v", aside)
	}
	if err := history.Check(p); err != nil {
		t.Errorf("the new history: %v", err)
	}
	hs, err = history.Open(p, history.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer hs.Close()
	if pts, err := hs.Query("processes.total", time.Now().Add(-time.Minute), time.Now().Add(time.Minute), 0); err != nil || len(pts) == 0 {
		t.Errorf("the new history recorded nothing: %d points, %v", len(pts), err)
	}
}
