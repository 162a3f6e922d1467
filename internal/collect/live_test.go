package collect_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/picket-guard/picket/internal/collect"
	"github.com/picket-guard/picket/internal/hostcap"
	"github.com/picket-guard/picket/internal/procid"
	"github.com/picket-guard/picket/internal/snapshot"
	"github.com/picket-guard/picket/internal/testkit"
	"github.com/picket-guard/picket/internal/testkit/hold"
	"github.com/picket-guard/picket/internal/testkit/snaptest"
)

// The test binary doubles as the socket holder the live tests count
// (testkit.StartSockets), and as a process that exits mid-look (exiter).
func TestMain(m *testing.M) {
	testkit.Main(m, map[string]func() int{"exiter": exiter, "threader": threader, "setresuid": setresuid, "fdholder": fdholder})
}

func holder(s *snapshot.Snapshot, pid int) (snapshot.Holder, bool) {
	for _, h := range s.Sockets.Processes {
		if h.PID == pid {
			return h, true
		}
	}
	return snapshot.Holder{}, false
}

// TestLiveSocketsPerProcess opens known numbers of each kind of socket in a
// child and checks its per-process counts exactly, unbound UDP included
// (those are in no /proc/net table).
func TestLiveSocketsPerProcess(t *testing.T) {
	spec := hold.Spec{Comm: "pkt-sockets", UnixPairs: 150, UDPBound: 40, UDPUnbound: 25, TCPPairs: 12, Netlink: 3}
	if os.Geteuid() == 0 {
		spec.Raw = 2
	} else {
		t.Log("not root: no raw sockets in this run")
	}
	cmd := testkit.StartSockets(t, spec, nil)
	s := snaptest.Live(t)
	h, ok := holder(s, cmd.Process.Pid)
	if !ok {
		t.Fatalf("child %d not among socket holders", cmd.Process.Pid)
	}
	want := spec.Want()
	if h.SocketCounts != want || h.Total != want.Sum() {
		t.Errorf("child counts = %+v total %d, want %+v total %d", h.SocketCounts, h.Total, want, want.Sum())
	}
	if h.Comm != spec.Comm || h.FDs < h.Total+3 || h.FDLimit <= 0 {
		t.Errorf("holder = %+v", h)
	}
	if s.Sockets.Totals.Unix < want.Unix || s.Sockets.Totals.UDP < want.UDP || s.Sockets.TCPStates["ESTABLISHED"] < 2*spec.TCPPairs {
		t.Errorf("totals %+v / states %v do not include the child's sockets", s.Sockets.Totals, s.Sockets.TCPStates)
	}
}

// TestLiveStorm spawns a storm of one command under one user (nobody, when
// root) and checks the user × command group count exactly.
func TestLiveStorm(t *testing.T) {
	const n = 60
	var attr *syscall.SysProcAttr
	var wantUser string
	if os.Geteuid() == 0 {
		attr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		wantUser = nameOf(t, 65534)
	} else {
		t.Log("not root: the storm runs under the test's own user, not nobody")
		wantUser = nameOf(t, uint32(os.Geteuid()))
	}
	// A name no other package's live test uses: go test runs packages side
	// by side, and act's kill tests end every pkt-imapd of nobody.
	testkit.Sleepers(t, "pkt-col-imapd", n, attr)
	s := snaptest.Live(t)
	var got []snapshot.Group
	for _, g := range s.Processes.Groups {
		if g.Comm == "pkt-col-imapd" {
			got = append(got, g)
		}
	}
	if len(got) != 1 || got[0].Count != n || got[0].User != wantUser || got[0].Threads != n {
		t.Fatalf("groups for pkt-col-imapd = %+v, want one of %d under %s", got, n, wantUser)
	}
}

func nameOf(t *testing.T, uid uint32) string {
	return procid.NewUsers("/").Accounts().Name(uid)
}

// TestLiveOtherNetns: a process in its own network namespace has its sockets
// attributed from that namespace's tables (a container's).
func TestLiveOtherNetns(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: creating a network namespace (CLONE_NEWNET)")
	}
	spec := hold.Spec{Comm: "pkt-netns", UnixPairs: 4, UDPBound: 3, TCPPairs: 1, AnyAddr: true}
	cmd := testkit.StartSockets(t, spec, &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET})
	s := snaptest.Live(t)
	h, ok := holder(s, cmd.Process.Pid)
	if !ok {
		t.Fatal("child in its own netns not among holders")
	}
	// Lo is down there, so only the listener exists of the TCP part.
	want := snapshot.SocketCounts{TCP: 1, UDP: 3, Unix: 8}
	if h.SocketCounts != want {
		t.Errorf("netns child = %+v, want %+v", h.SocketCounts, want)
	}
	if s.Sockets.Namespaces < 2 {
		t.Errorf("namespaces = %d, want ≥ 2", s.Sockets.Namespaces)
	}
}

// TestLiveHostileNames: names chosen by a process reach the data verbatim
// and the terminal escaped.
func TestLiveHostileNames(t *testing.T) {
	names := []string{"$(touch /tmp/x)", "\x1b[2J\x1b]0;pw\a", "a\nFAKE 999 root"}
	var pids []int
	for _, n := range names {
		pids = append(pids, testkit.StartSockets(t, hold.Spec{Comm: n, UnixPairs: 1}, nil).Process.Pid)
	}
	s := snaptest.Live(t)
	for i, pid := range pids {
		h, ok := holder(s, pid)
		if !ok || h.Comm != names[i] {
			t.Errorf("pid %d comm = %q, want %q verbatim", pid, h.Comm, names[i])
		}
	}
	var out bytes.Buffer
	if err := snapshot.WriteSummary(&out, s, snapshot.SummaryOptions{Top: 1000}); err != nil {
		t.Fatal(err)
	}
	if bytes.ContainsAny(out.Bytes(), "\x1b\a\r") {
		t.Errorf("raw control bytes reached the summary")
	}
	if strings.Contains(out.String(), "\nFAKE 999") {
		t.Errorf("a newline in a name forged a line of output")
	}
	if !strings.Contains(out.String(), `\x1b[2J\x1b]0;pw\x07`) || !strings.Contains(out.String(), `a\nFAKE 999 root`) {
		t.Errorf("escaped names missing from the summary:\n%s", out.String())
	}
}

// TestLiveChurn: processes exiting mid-scan are skipped silently.
func TestLiveChurn(t *testing.T) {
	// Generous: a loaded 2-core machine can take a second per collection.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for w := 0; w < 2; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 400; i++ {
				select {
				case <-stop:
					return
				default:
				}
				exec.CommandContext(ctx, "true").Run()
			}
		}()
	}
	c, err := collect.New(collect.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 10; i++ {
		if _, err := c.Collect(ctx, collect.Full); err != nil {
			t.Errorf("collect %d during churn: %v", i, err)
		}
	}
	close(stop)
	wg.Wait()
}

// TestLiveLight: a light look agrees with a full one on processes, groups
// and fd counts, and says it skipped the sockets — on this kernel, and as
// on one before 6.2, whose st_size of fd/ counts nothing (the fds are then
// counted by listing fd/).
func TestLiveLight(t *testing.T) {
	h := hostcap.Probe(hostcap.Options{})
	for _, v := range []struct {
		name string
		host *hostcap.Set
	}{{"probed", h}, {"without fd_count", h.Without(hostcap.FDCount)}} {
		t.Run(v.name, func(t *testing.T) { testLiveLight(t, v.host) })
	}
}

func testLiveLight(t *testing.T, host *hostcap.Set) {
	var uts unix.Utsname
	unix.Uname(&uts)
	spec := hold.Spec{Comm: "pkt-light", UnixPairs: 30, UDPBound: 5}
	cmd := testkit.StartSockets(t, spec, nil)
	c, err := collect.New(collect.Options{Host: host})
	if err != nil {
		t.Fatal(err)
	}
	light, err := c.Collect(context.Background(), collect.Light)
	if err != nil {
		t.Fatal(err)
	}
	full, err := c.Collect(context.Background(), collect.Full)
	if err != nil {
		t.Fatal(err)
	}
	if !light.Light || full.Light || len(light.Sockets.Processes) != 0 || len(full.Sockets.Processes) == 0 {
		t.Fatalf("light=%v (%d holders), full=%v (%d holders)", light.Light, len(light.Sockets.Processes), full.Light, len(full.Sockets.Processes))
	}
	var lp, fp *snapshot.Process
	for i := range light.Processes.List {
		if light.Processes.List[i].PID == cmd.Process.Pid {
			lp = &light.Processes.List[i]
		}
	}
	for i := range full.Processes.List {
		if full.Processes.List[i].PID == cmd.Process.Pid {
			fp = &full.Processes.List[i]
		}
	}
	if lp == nil || fp == nil || lp.Comm != "pkt-light" || lp.UID != fp.UID {
		t.Fatalf("child in light %+v, full %+v", lp, fp)
	}
	// A count either way: one stat of fd/ (Linux 6.2), or its listing.
	if lp.FDs != fp.FDs || lp.FDs < 30*2+5 {
		t.Errorf("light fds %d, full %d (kernel %s)", lp.FDs, fp.FDs, unix.ByteSliceToString(uts.Release[:]))
	}
	if i := slices.IndexFunc(light.Processes.Groups, func(g snapshot.Group) bool {
		return g.User == fp.User && g.Comm == "pkt-light"
	}); i < 0 || light.Processes.Groups[i].Count != 1 {
		t.Errorf("light groups lack the child (group %d of %d)", i, len(light.Processes.Groups))
	}
}
