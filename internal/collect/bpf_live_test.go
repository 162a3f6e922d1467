package collect_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/picket-guard/picket/internal/collect"
	"github.com/picket-guard/picket/internal/hostcap"
	"github.com/picket-guard/picket/internal/snapshot"
	"github.com/picket-guard/picket/internal/sockiter"
	"github.com/picket-guard/picket/internal/testkit"
	"github.com/picket-guard/picket/internal/testkit/hold"
)

// exiter is a helper process that opens a few sockets, says "ready", and
// when its stdin closes exits within 0–300 ms: a process that is there
// when a look starts and gone before it ends.
func exiter() int {
	if fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM, 0); err == nil {
		defer unix.Close(fds[0])
		defer unix.Close(fds[1])
	}
	if fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM, 0); err == nil {
		defer unix.Close(fd)
	}
	fmt.Println("ready")
	io.Copy(io.Discard, os.Stdin)
	time.Sleep(time.Duration(rand.IntN(300)) * time.Millisecond)
	return 0
}

// threaderThreads is how many threads a threader parks, besides the Go
// runtime's own.
const threaderThreads = 8

// threader parks threaderThreads threads, says "ready" and waits for its
// stdin to close: a process with a thread count of its own.
func threader() int {
	for range threaderThreads {
		go func() {
			runtime.LockOSThread()
			select {}
		}()
	}
	fmt.Println("ready")
	io.Copy(io.Discard, os.Stdin)
	return 0
}

// The real and effective uids a setresuid helper takes: none of this
// host's users, so that the users' counts say whose they are.
const (
	setresuidReal      = 47101
	setresuidEffective = 47102
)

// setresuid changes its real and effective uids apart (as a daemon that
// keeps its real uid to get its privilege back does), which also makes it
// non-dumpable (commit_creds), so its /proc/PID is root's: the /proc walk
// finds the ids in status.
func setresuid() int {
	if err := syscall.Setresuid(setresuidReal, setresuidEffective, setresuidEffective); err != nil {
		fmt.Println(err)
		return 1
	}
	fmt.Println("ready")
	io.Copy(io.Discard, os.Stdin)
	return 0
}

// startReady starts a helper (env: more of its environment) that says
// "ready" and runs until its stdin closes, which the test's end does.
func startReady(t *testing.T, name string, attr *syscall.SysProcAttr, env ...string) int {
	t.Helper()
	c := testkit.HelperCommand(name, env...)
	c.SysProcAttr = attr
	in, err := c.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := c.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { in.Close(); c.Process.Kill(); c.Wait() })
	if l, err := bufio.NewReader(out).ReadString('\n'); err != nil || l != "ready\n" {
		t.Fatalf("%s: %q %v", name, l, err)
	}
	return c.Process.Pid
}

// duringExits starts n exiters, waits until each holds its sockets, lets
// them all go and runs look while they exit. It returns their pids.
func duringExits(t *testing.T, n int, look func()) map[int]bool {
	t.Helper()
	pids := map[int]bool{}
	var stdins []io.Closer
	var cmds []*exec.Cmd
	for range n {
		c := testkit.HelperCommand("exiter")
		in, err := c.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		out, err := c.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Process.Kill(); c.Wait() })
		if l, err := bufio.NewReader(out).ReadString('\n'); err != nil || l != "ready\n" {
			t.Fatalf("exiter: %q %v", l, err)
		}
		pids[c.Process.Pid] = true
		stdins, cmds = append(stdins, in), append(cmds, c)
	}
	for _, in := range stdins {
		in.Close()
	}
	look()
	for _, c := range cmds {
		c.Wait()
	}
	return pids
}

// TestLiveBPFMatchesProc holds one live load (unix pairs, bound and unbound
// UDP, TCP pairs and a listener, netlink, raw, a holder in another network
// namespace, a process with threads of its own, one whose real and
// effective uids differ, one in a pid namespace of its own, processes
// exiting while the looks run) and takes a look with the /proc walk, one
// with the BPF iterators and one more with /proc: both ways must attribute
// the same sockets, of the same kinds, to the same processes, and say the
// same of every process (parent, name, owner, state, start, threads, rss,
// fds, cgroup) that the two /proc looks agree on. Only a process that
// exits during the looks may differ.
// It runs with each socket pass: the fd walk (6.2 and later) and the
// task_file iterator.
func TestLiveBPFMatchesProc(t *testing.T) {
	t.Run("fd walk", func(t *testing.T) { liveBPFMatchesProc(t, false) })
	t.Run("task_file", func(t *testing.T) { liveBPFMatchesProc(t, true) })
}

func liveBPFMatchesProc(t *testing.T, noWalk bool) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: loading the BPF iterator, creating a network namespace")
	}
	if why := sockiter.Why(); why != "" {
		t.Skip(why)
	}
	specs := []hold.Spec{
		{Comm: "pkt-ref-a", UnixPairs: 60, UDPBound: 25, UDPUnbound: 7, TCPPairs: 20, Netlink: 2, Raw: 1},
		{Comm: "pkt-ref-b", UnixPairs: 5, UDPUnbound: 30},
		{Comm: "pkt-ref-c", TCPPairs: 40},
	}
	var holders []int
	for _, sp := range specs {
		holders = append(holders, testkit.StartSockets(t, sp, nil).Process.Pid)
	}
	ns := testkit.StartSockets(t, hold.Spec{Comm: "pkt-ref-ns", UnixPairs: 3, UDPBound: 4, UDPUnbound: 2, TCPPairs: 1, AnyAddr: true},
		&syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET})
	holders = append(holders, ns.Process.Pid)
	threaded := startReady(t, "threader", nil)
	setuid := startReady(t, "setresuid", nil)
	pidns := startReady(t, "threader", &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWPID})

	look := func(opts collect.Options) *snapshot.Snapshot {
		c, err := collect.New(opts)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		s, err := c.Collect(context.Background(), collect.Full)
		if err != nil {
			t.Fatalf("look (%+v): %v", opts, err)
		}
		return s
	}
	// Each look runs while 20 processes holding sockets exit.
	var bpf, proc, proc2 *snapshot.Snapshot
	exiters := duringExits(t, 20, func() { proc2 = look(collect.Options{ProcOnly: true}) })
	maps.Copy(exiters, duringExits(t, 20, func() { bpf = look(collect.Options{BPFNoWalk: noWalk}) }))
	maps.Copy(exiters, duringExits(t, 20, func() { proc = look(collect.Options{ProcOnly: true}) }))
	if bpf.Collector != snapshot.CollectorBPF {
		t.Fatalf("the iterator did not run: collector %q, %s", bpf.Collector, bpf.CollectorReason)
	}
	want := "task_fds"
	if noWalk {
		want = "task_file"
	} else if !testkit.KernelAtLeast(6, 2) {
		t.Skipf("the fd walk needs 6.2 (bpf_rdonly_cast): %s", bpf.BPFPrograms)
	}
	if !strings.Contains(bpf.BPFPrograms, ": "+want+" ") && !strings.HasPrefix(bpf.BPFPrograms, want+" ") {
		t.Fatalf("the socket pass was not %s: bpf_programs %q", want, bpf.BPFPrograms)
	}
	if bpf.ProcessCollector != snapshot.CollectorBPF {
		t.Fatalf("the task iterator did not run: process collector %q, %s", bpf.ProcessCollector, bpf.ProcessCollectorReason)
	}
	if proc.Collector != snapshot.CollectorProc || proc.CollectorReason == "" || proc.ProcessCollector != snapshot.CollectorProc {
		t.Errorf("proc look says collector %q (%q), process collector %q", proc.Collector, proc.CollectorReason, proc.ProcessCollector)
	}
	// The BPF look reads the kernel log alongside the passes, the /proc
	// look in turn: both read the same buffer.
	if kb, kp := bpf.KernelLog, proc.KernelLog; kb == nil || kp == nil || kb.Source != kp.Source || kb.Mode != kp.Mode ||
		kb.Available != kp.Available || kb.BootID != kp.BootID || kb.NextSeq == 0 && kp.NextSeq != 0 {
		t.Errorf("kernel log: bpf look %+v, proc look %+v", kb, kp)
	}
	// The sock_diag dumps' netlink sockets, open while the BPF pass
	// lists this process's fds, are not this process's.
	for _, h := range bpf.Sockets.Processes {
		if h.PID == os.Getpid() && h.Netlink != 0 {
			t.Errorf("the BPF look has this process hold %d netlink sockets", h.Netlink)
		}
	}
	load := map[int]bool{threaded: true, setuid: true, pidns: true}
	for _, pid := range holders {
		load[pid] = true
	}
	compareProcesses(t, proc2, bpf, proc, exiters, load)

	// The load's own processes are there, and as they are.
	pb := processes(bpf)
	if p := pb[threaded]; p.Threads < threaderThreads+1 {
		t.Errorf("threader %d: %d threads, want more than %d", threaded, p.Threads, threaderThreads)
	}
	if p := pb[setuid]; p.UID != setresuidEffective {
		t.Errorf("setresuid helper %d: uid %d, want its effective %d", setuid, p.UID, setresuidEffective)
	}
	for _, s := range []*snapshot.Snapshot{bpf, proc} {
		// Users are counted by real uid (RLIMIT_NPROC's).
		found := false
		for _, u := range s.Processes.Users {
			if u.UID == setresuidReal && u.Count == 1 {
				found = true
			}
			if u.UID == setresuidEffective {
				t.Errorf("%s look counts a user by the effective uid %d: %+v", s.ProcessCollector, u.UID, u)
			}
		}
		if !found {
			t.Errorf("%s look has no user %d of one process (the setresuid helper's real uid)", s.ProcessCollector, setresuidReal)
		}
	}
	if p, ok := pb[pidns]; !ok || p.PPID != os.Getpid() {
		t.Errorf("process %d in its own pid namespace: %+v (present %v), want the test as its parent", pidns, p, ok)
	}

	// Every holder of the load, and every process present in both looks
	// and unchanged between them, has the same sockets both ways. Other
	// processes of this host may open and close sockets between the two
	// looks; the load's do not.
	byPID := func(s *snapshot.Snapshot) map[int]snapshot.Holder {
		m := map[int]snapshot.Holder{}
		for _, h := range s.Sockets.Processes {
			m[h.PID] = h
		}
		return m
	}
	hb, hp := byPID(bpf), byPID(proc)
	for i, pid := range holders {
		b, okb := hb[pid]
		p, okp := hp[pid]
		if !okb || !okp {
			t.Errorf("holder %d (%s) missing: bpf %v, proc %v", pid, b.Comm, okb, okp)
			continue
		}
		if b.SocketCounts != p.SocketCounts || b.Total != p.Total || b.FDs != p.FDs || b.UID != p.UID {
			t.Errorf("holder %d: bpf %+v, proc %+v", pid, b, p)
		}
		if i < len(specs) {
			if want := specs[i].Want(); b.SocketCounts != want {
				t.Errorf("holder %d (%s): %+v, want %+v", pid, specs[i].Comm, b.SocketCounts, want)
			}
		}
	}
	if want := (snapshot.SocketCounts{TCP: 1, UDP: 6, Unix: 6}); hb[ns.Process.Pid].SocketCounts != want {
		t.Errorf("holder in its own netns: %+v, want %+v", hb[ns.Process.Pid].SocketCounts, want)
	}
	seen := 0
	for pid, h := range hb {
		if exiters[pid] {
			seen++
			continue
		}
		if p, ok := hp[pid]; ok && p.Comm == h.Comm && p.SocketCounts != h.SocketCounts && isLoad(h.Comm) {
			t.Errorf("pid %d (%s): bpf %+v, proc %+v", pid, h.Comm, h.SocketCounts, p.SocketCounts)
		}
	}
	t.Logf("%d holders each way; %d exiting processes, %d of them seen holding sockets by the BPF look",
		len(hb), len(exiters), seen)
}

// processes indexes s's processes by pid.
func processes(s *snapshot.Snapshot) map[int]snapshot.Process {
	m := make(map[int]snapshot.Process, len(s.Processes.List))
	for _, p := range s.Processes.List {
		m[p.PID] = p
	}
	return m
}

// compareProcesses checks that the BPF look says of each process what
// the /proc looks before and after it say, for every field the two /proc
// looks agree on: the rest changed meanwhile (a busy process's state and
// rss, a kworker's name, a process another test moves between cgroups);
// state, threads, rss and fds are compared for the load's processes only,
// which sleep.
// A process in all three looks with the same start time is the same
// process; one missing from the BPF look only must have exited (or be an
// exiter) by the second /proc look.
func compareProcesses(t *testing.T, before, bpf, after *snapshot.Snapshot, exiters, load map[int]bool) {
	t.Helper()
	pb, p1, p2 := processes(bpf), processes(before), processes(after)
	compared, fields, churn := 0, 0, 0
	for pid, a := range p1 {
		z, ok := p2[pid]
		if !ok || exiters[pid] || !a.StartTime.Equal(z.StartTime) || pid == os.Getpid() {
			// The test itself opens and closes fds, runs and sleeps
			// from one look to the next.
			continue
		}
		b, ok := pb[pid]
		if !ok {
			t.Errorf("pid %d (%s) is in both /proc looks but not the BPF one", pid, a.Comm)
			continue
		}
		compared++
		check := func(name string, x, y, got any) {
			if x != y {
				churn++
				return
			}
			fields++
			if got != x {
				t.Errorf("pid %d (%s): %s is %v by BPF, %v by /proc", pid, a.Comm, name, got, x)
			}
		}
		check("ppid", a.PPID, z.PPID, b.PPID)
		if !a.KernelThread || !strings.HasPrefix(a.Comm, "kworker/") {
			// A kworker's name says what it works for now
			// (wq_worker_comm): it changes by the millisecond.
			check("comm", a.Comm, z.Comm, b.Comm)
		}
		check("uid", a.UID, z.UID, b.UID)
		check("user", a.User, z.User, b.User)
		if load[pid] {
			// A process of the host's may run at any moment, and
			// open a file or start a thread between two looks that
			// find the same count (pid 1 here, a process server, did:
			// 260 fds by both /proc looks, 244 in between); the
			// load's processes sleep, so their every field holds.
			check("state", a.State, z.State, b.State)
			check("threads", a.Threads, z.Threads, b.Threads)
			check("rss", a.RSSBytes, z.RSSBytes, b.RSSBytes)
			check("fds", a.FDs, z.FDs, b.FDs)
			delete(load, pid)
		}
		check("start", a.StartTime.UnixNano(), z.StartTime.UnixNano(), b.StartTime.UnixNano())
		check("kernel thread", a.KernelThread, z.KernelThread, b.KernelThread)
		check("cgroup", a.Cgroup, z.Cgroup, b.Cgroup)
		check("unit", a.Unit, z.Unit, b.Unit)
	}
	for pid := range load {
		t.Errorf("process %d of the load is not in every look", pid)
	}
	if compared < 50 {
		t.Errorf("only %d processes in all three looks", compared)
	}
	t.Logf("%d processes compared, %d fields equal both ways, %d changed between the /proc looks", compared, fields, churn)
}

func isLoad(comm string) bool { return len(comm) > 8 && comm[:8] == "pkt-ref-" }

// TestLiveBPFZombieInV1Cgroup: a process that has exited but is not reaped
// yet, left in a v1 cgroup, is shown in the root cgroup by both looks, as
// /proc/PID/cgroup shows it (proc_cgroup_show prints "/" on v1 hierarchies
// for a task with PF_EXITING); alive, in its own cgroup by both.
func TestLiveBPFZombieInV1Cgroup(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: loading the BPF iterator, creating a cgroup")
	}
	if why := sockiter.Why(); why != "" {
		t.Skip(why)
	}
	const hier = "/sys/fs/cgroup/pids"
	if _, err := os.Stat(hier + "/cgroup.procs"); err != nil {
		t.Skipf("no v1 pids hierarchy at %s (a pure v2 host): %v", hier, err)
	}
	name := fmt.Sprintf("picket-test-zombie-%d", os.Getpid())
	dir := hier + "/" + name
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	c := exec.Command("sleep", "60")
	if err := c.Start(); err != nil {
		os.Remove(dir)
		t.Fatal(err)
	}
	reaped := false
	t.Cleanup(func() {
		if !reaped {
			c.Process.Kill()
			c.Wait()
		}
		os.Remove(dir)
	})
	pid := c.Process.Pid
	if err := os.WriteFile(dir+"/cgroup.procs", []byte(strconv.Itoa(pid)), 0); err != nil {
		t.Fatal(err)
	}
	look := func(opts collect.Options) snapshot.Process {
		t.Helper()
		col, err := collect.New(opts)
		if err != nil {
			t.Fatal(err)
		}
		defer col.Close()
		s, err := col.Collect(context.Background(), collect.Full)
		if err != nil {
			t.Fatal(err)
		}
		if !opts.ProcOnly && s.ProcessCollector != snapshot.CollectorBPF {
			t.Fatalf("the task iterator did not run: %s", s.ProcessCollectorReason)
		}
		p, ok := processes(s)[pid]
		if !ok {
			t.Fatalf("process %d not in the %s look", pid, s.ProcessCollector)
		}
		return p
	}
	for _, o := range []collect.Options{{}, {ProcOnly: true}} {
		if p := look(o); p.Cgroup != "/"+name {
			t.Errorf("alive, ProcOnly %v: cgroup %q, want /%s", o.ProcOnly, p.Cgroup, name)
		}
	}
	if err := c.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	// Not reaped: wait (without waiting on it) until it is a zombie.
	for i := 0; ; i++ {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err == nil {
			if f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:])); len(f) > 0 && f[0] == "Z" {
				break
			}
		}
		if i == 200 {
			t.Fatalf("process %d is no zombie after 2 s: %q %v", pid, b, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	want, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range []collect.Options{{}, {ProcOnly: true}} {
		p := look(o)
		if p.State != "Z" || p.Cgroup != "/" {
			t.Errorf("zombie, ProcOnly %v: state %q, cgroup %q, want Z and / (its /proc/PID/cgroup:\n%s)", o.ProcOnly, p.State, p.Cgroup, want)
		}
	}
	c.Wait()
	reaped = true
}

// TestLiveBPFFallback: where the iterator may not run, a full look walks
// /proc and says why; a light look and a fixture tree say nothing.
func TestLiveBPFFallback(t *testing.T) {
	host := hostcap.Probe(hostcap.Options{})
	for _, c := range []struct {
		name string
		opts collect.Options
		want string // in the reason
	}{
		{"no BTF", collect.Options{Host: host.Without(hostcap.BTF)}, "BTF"},
		{"no privilege", collect.Options{Host: host.WithoutCaps(hostcap.CapSysAdmin, hostcap.CapBPF, hostcap.CapPerfmon)}, "CAP_BPF"},
		{"bpf_iter refused", collect.Options{Host: host.Without(hostcap.BPFIter)}, "bpf_iter"},
		{"an idle host for a one-shot", collect.Options{BPFMinFiles: 1 << 30}, "files open"},
		{"asked for", collect.Options{ProcOnly: true}, "asked for"},
	} {
		t.Run(c.name, func(t *testing.T) {
			col, err := collect.New(c.opts)
			if err != nil {
				t.Fatal(err)
			}
			defer col.Close()
			s, _ := col.Collect(context.Background(), collect.Full)
			if s.Collector != snapshot.CollectorProc || !strings.Contains(s.CollectorReason, c.want) {
				t.Errorf("collector %q, reason %q; want proc, a reason with %q", s.Collector, s.CollectorReason, c.want)
			}
			l, _ := col.Collect(context.Background(), collect.Light)
			if l.Collector != "" || l.CollectorReason != "" {
				t.Errorf("light look: collector %q (%q)", l.Collector, l.CollectorReason)
			}
		})
	}
}
