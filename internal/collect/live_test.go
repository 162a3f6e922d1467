package collect

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/picket-guard/picket/internal/procid"
	"github.com/picket-guard/picket/internal/snapshot"
)

// The test binary doubles as a socket-holding child: with PICKET_TEST_CHILD
// set, TestMain names the process, opens exactly the sockets asked for,
// says "ready" and waits for stdin to close.
func TestMain(m *testing.M) {
	if os.Getenv("PICKET_TEST_CHILD") != "" {
		os.Exit(child())
	}
	os.Exit(m.Run())
}

type childSpec struct {
	Comm        string
	UnixPairs   int // socketpair(AF_UNIX): 2 unix sockets each
	UDPBound    int // bound to 127.0.0.1:0 (listed in /proc/net/udp)
	UDPUnbound  int // never bound: in no table, found by the xattr
	TCPPairs    int // one listener plus a connected client and server per pair
	Netlink     int
	Raw         int // needs CAP_NET_RAW
	AnyAddrOnly bool
}

func (c childSpec) env() []string {
	return append(os.Environ(), "PICKET_TEST_CHILD=1",
		"PICKET_CHILD_COMM="+c.Comm,
		fmt.Sprintf("PICKET_CHILD_COUNTS=%d,%d,%d,%d,%d,%d", c.UnixPairs, c.UDPBound, c.UDPUnbound, c.TCPPairs, c.Netlink, c.Raw),
		fmt.Sprintf("PICKET_CHILD_ANYADDR=%t", c.AnyAddrOnly))
}

func (c childSpec) want() snapshot.SocketCounts {
	tcp := 0
	if c.TCPPairs > 0 {
		tcp = 1 + 2*c.TCPPairs
	}
	return snapshot.SocketCounts{TCP: tcp, UDP: c.UDPBound + c.UDPUnbound, Unix: 2 * c.UnixPairs, Netlink: c.Netlink, Raw: c.Raw}
}

func child() int {
	if comm := os.Getenv("PICKET_CHILD_COMM"); comm != "" {
		// /proc/self/comm names the thread group leader, whichever thread
		// the runtime runs this on (PR_SET_NAME would name only this one).
		if err := os.WriteFile("/proc/self/comm", []byte(comm), 0); err != nil {
			fmt.Println("comm:", err)
			return 1
		}
	}
	var n [6]int
	if _, err := fmt.Sscanf(os.Getenv("PICKET_CHILD_COUNTS"), "%d,%d,%d,%d,%d,%d", &n[0], &n[1], &n[2], &n[3], &n[4], &n[5]); err != nil {
		fmt.Println("counts:", err)
		return 1
	}
	loop := [4]byte{127, 0, 0, 1}
	if os.Getenv("PICKET_CHILD_ANYADDR") == "true" { // a fresh netns has lo down
		loop = [4]byte{}
	}
	fail := func(what string, err error) int { fmt.Println(what+":", err); return 1 }
	for i := 0; i < n[0]; i++ {
		if _, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM, 0); err != nil {
			return fail("socketpair", err)
		}
	}
	for i := 0; i < n[1]+n[2]; i++ {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM, 0)
		if err != nil {
			return fail("udp", err)
		}
		if i < n[1] {
			if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: loop}); err != nil {
				return fail("bind udp", err)
			}
		}
	}
	if n[3] > 0 {
		l, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM, 0)
		if err != nil {
			return fail("tcp", err)
		}
		if err := unix.Bind(l, &unix.SockaddrInet4{Addr: loop}); err != nil {
			return fail("bind tcp", err)
		}
		if err := unix.Listen(l, n[3]); err != nil {
			return fail("listen", err)
		}
		sa, _ := unix.Getsockname(l)
		port := sa.(*unix.SockaddrInet4).Port
		if loop == ([4]byte{}) {
			// lo is down in a fresh namespace: bring no device up, just
			// leave the listener (and count one pair as not made).
			n[3] = 0
		}
		for i := 0; i < n[3]; i++ {
			c, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM, 0)
			if err != nil {
				return fail("tcp client", err)
			}
			if err := unix.Connect(c, &unix.SockaddrInet4{Addr: loop, Port: port}); err != nil {
				return fail("connect", err)
			}
			if _, _, err := unix.Accept(l); err != nil {
				return fail("accept", err)
			}
		}
	}
	for i := 0; i < n[4]; i++ {
		if _, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW, unix.NETLINK_ROUTE); err != nil {
			return fail("netlink", err)
		}
	}
	for i := 0; i < n[5]; i++ {
		if _, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW, unix.IPPROTO_ICMP); err != nil {
			return fail("raw", err)
		}
	}
	fmt.Println("ready")
	var b [1]byte
	for {
		if _, err := os.Stdin.Read(b[:]); err != nil {
			return 0
		}
	}
}

// startChild starts a socket-holding child and waits until it is ready. It
// is killed when the test ends, however it ends.
func startChild(t *testing.T, spec childSpec, attr *syscall.SysProcAttr) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = spec.env()
	cmd.SysProcAttr = attr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start child: %v", err)
	}
	t.Cleanup(func() {
		stdin.Close()
		cmd.Process.Kill()
		cmd.Wait()
	})
	line, err := bufio.NewReader(out).ReadString('\n')
	if strings.TrimSpace(line) != "ready" {
		t.Fatalf("child did not get ready: %q %v", line, err)
	}
	return cmd
}

func liveSnapshot(t *testing.T) *snapshot.Snapshot {
	t.Helper()
	c, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	s, err := c.Collect(context.Background(), Full)
	if err != nil {
		t.Fatalf("live Collect: %v", err)
	}
	return s
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
	spec := childSpec{Comm: "pkt-sockets", UnixPairs: 150, UDPBound: 40, UDPUnbound: 25, TCPPairs: 12, Netlink: 3}
	if os.Geteuid() == 0 {
		spec.Raw = 2
	} else {
		t.Log("not root: no raw sockets in this run")
	}
	cmd := startChild(t, spec, nil)
	s := liveSnapshot(t)
	h, ok := holder(s, cmd.Process.Pid)
	if !ok {
		t.Fatalf("child %d not among socket holders", cmd.Process.Pid)
	}
	want := spec.want()
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
	dir, err := os.MkdirTemp("", "picket-storm-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Skip("no sleep binary")
	}
	// The comm is the name the program was executed under.
	exe := filepath.Join(dir, "pkt-imapd")
	if err := os.Symlink(sleep, exe); err != nil {
		t.Fatal(err)
	}
	var attr *syscall.SysProcAttr
	var wantUser string
	if os.Geteuid() == 0 {
		attr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		wantUser = nameOf(t, 65534)
	} else {
		t.Log("not root: the storm runs under the test's own user, not nobody")
		wantUser = nameOf(t, uint32(os.Geteuid()))
	}
	var cmds []*exec.Cmd
	t.Cleanup(func() {
		for _, c := range cmds {
			c.Process.Kill()
			c.Wait()
		}
	})
	for i := 0; i < n; i++ {
		c := exec.Command(exe, "120")
		c.SysProcAttr = attr
		if err := c.Start(); err != nil {
			t.Fatalf("start %d: %v", i, err)
		}
		cmds = append(cmds, c)
	}
	// exec is done once comm reads pkt-imapd; wait for all (bounded).
	deadline := time.Now().Add(10 * time.Second)
	for _, c := range cmds {
		for {
			b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", c.Process.Pid))
			if strings.TrimSpace(string(b)) == "pkt-imapd" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("pid %d never became pkt-imapd", c.Process.Pid)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	s := liveSnapshot(t)
	var got []snapshot.Group
	for _, g := range s.Processes.Groups {
		if g.Comm == "pkt-imapd" {
			got = append(got, g)
		}
	}
	if len(got) != 1 || got[0].Count != n || got[0].User != wantUser || got[0].Threads != n {
		t.Fatalf("groups for pkt-imapd = %+v, want one of %d under %s", got, n, wantUser)
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
	spec := childSpec{Comm: "pkt-netns", UnixPairs: 4, UDPBound: 3, TCPPairs: 1, AnyAddrOnly: true}
	cmd := startChild(t, spec, &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET})
	s := liveSnapshot(t)
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
		pids = append(pids, startChild(t, childSpec{Comm: n, UnixPairs: 1}, nil).Process.Pid)
	}
	s := liveSnapshot(t)
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
	c, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 10; i++ {
		if _, err := c.Collect(ctx, Full); err != nil {
			t.Errorf("collect %d during churn: %v", i, err)
		}
	}
	close(stop)
	wg.Wait()
}

// TestLiveLight: a light look agrees with a full one on processes, groups
// and fd counts, and says it skipped the sockets.
func TestLiveLight(t *testing.T) {
	var uts unix.Utsname
	unix.Uname(&uts)
	spec := childSpec{Comm: "pkt-light", UnixPairs: 30, UDPBound: 5}
	cmd := startChild(t, spec, nil)
	c, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	light, err := c.Collect(context.Background(), Light)
	if err != nil {
		t.Fatal(err)
	}
	full, err := c.Collect(context.Background(), Full)
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
	// st_size of fd/ counts open fds since Linux 6.2; before, light says -1.
	if lp.FDs != fp.FDs && lp.FDs != -1 {
		t.Errorf("light fds %d, full %d (kernel %s)", lp.FDs, fp.FDs, unix.ByteSliceToString(uts.Release[:]))
	}
	if g := findGroup(light, fp.User, "pkt-light"); g == nil || g.Count != 1 {
		t.Errorf("light groups lack the child: %+v", g)
	}
}
