// Command benchsnapshot is the engine of scripts/bench-snapshot: it builds a
// bounded process and socket load on the loopback, checks that picket sees
// it, then times picket against ps+ss and lsof, alternating, in one run.
//
// It is a benchmark tool, not part of picket: it forks freely (ps, ss, lsof
// and its own load are what it measures). Every argument it hands to a
// command is a constant or a number; no shell sees a value from outside
// except the fixed ps pipeline.
//
// Cleanup does not depend on this process ending well: sleepers exit on
// their own after -max-time, holders exit when their stdin (a pipe from
// here) closes or after -max-time, every child gets PR_SET_PDEATHSIG, and
// the wrapper script kills the whole process group on exit or Ctrl-C.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/picket-guard/picket/internal/snapshot"
	"github.com/picket-guard/picket/internal/testkit/hold"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "hold" {
		os.Exit(holdMain(os.Args[2:]))
	}
	os.Exit(run(os.Args[1:]))
}

// holdArgs are the holder's command-line arguments for spec (before
// MAXSECONDS).
func holdArgs(spec hold.Spec) []string {
	return []string{strconv.Itoa(spec.UnixPairs), strconv.Itoa(spec.UDPBound), strconv.Itoa(spec.UDPUnbound), strconv.Itoa(spec.TCPPairs)}
}

// holdMain is the socket-holder child (package hold, the tests' own): it
// opens its sockets, says "ready" and waits for stdin to close (the parent
// died or is done) or max-time.
func holdMain(args []string) int {
	if len(args) != 5 {
		fmt.Println("usage: hold UNIXPAIRS UDPBOUND UDPUNBOUND TCPPAIRS MAXSECONDS")
		return 2
	}
	var n [5]int
	for i, a := range args {
		v, err := strconv.Atoi(a)
		if err != nil || v < 0 {
			fmt.Println("bad count:", a)
			return 2
		}
		n[i] = v
	}
	go func() {
		time.Sleep(time.Duration(n[4]) * time.Second)
		os.Exit(0)
	}()
	return hold.Serve(hold.Spec{UnixPairs: n[0], UDPBound: n[1], UDPUnbound: n[2], TCPPairs: n[3]})
}

// sleeperGroup is one user × comm group of sleeping processes.
type sleeperGroup struct {
	user string
	uid  uint32
	comm string
	n    int
}

type load struct {
	dir      string
	sleepers []*exec.Cmd
	holders  []*exec.Cmd
	stdins   []io.Closer
	groups   []sleeperGroup
	specs    []hold.Spec
}

// stop ends the load: holders first (stdin closed, then killed), then the
// sleepers; it waits for all so no zombie is left.
func (l *load) stop() {
	for _, c := range l.stdins {
		c.Close()
	}
	for _, cs := range [][]*exec.Cmd{l.holders, l.sleepers} {
		for _, c := range cs {
			if c.Process != nil {
				c.Process.Kill()
			}
		}
		for _, c := range cs {
			if c.Process != nil {
				c.Wait()
			}
		}
	}
	if l.dir != "" {
		os.RemoveAll(l.dir)
	}
}

func childAttr(uid, gid uint32) *syscall.SysProcAttr {
	a := &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if uid != 0 || gid != 0 {
		a.Credential = &syscall.Credential{Uid: uid, Gid: gid}
	}
	return a
}

func startLoad(ctx context.Context, tmpdir string, procs, holders int, spec hold.Spec, maxTime time.Duration) (*load, error) {
	l := &load{}
	dir, err := os.MkdirTemp(tmpdir, "load-")
	if err != nil {
		return l, err
	}
	l.dir = dir
	if err := os.Chmod(dir, 0o755); err != nil {
		return l, err
	}
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		return l, err
	}
	// The comm is the name the program was executed under: symlinks give
	// the sleepers their own names.
	l.groups = []sleeperGroup{
		{"nobody", 65534, "pkt-b-imapd", procs / 2},
		{"daemon", 1, "pkt-b-cron", procs * 3 / 10},
		{"root", 0, "pkt-b-worker", procs - procs/2 - procs*3/10},
	}
	secs := strconv.Itoa(int(maxTime.Seconds()))
	for _, g := range l.groups {
		exe := filepath.Join(dir, g.comm)
		if err := os.Symlink(sleep, exe); err != nil {
			return l, err
		}
		for i := 0; i < g.n; i++ {
			if err := ctx.Err(); err != nil {
				return l, err
			}
			c := exec.Command(exe, secs)
			c.SysProcAttr = childAttr(g.uid, g.uid)
			if err := c.Start(); err != nil {
				return l, fmt.Errorf("start %s #%d: %w", g.comm, i, err)
			}
			l.sleepers = append(l.sleepers, c)
		}
	}
	self, err := os.Executable()
	if err != nil {
		return l, err
	}
	holdExe := filepath.Join(dir, "pkt-b-holder")
	if err := os.Symlink(self, holdExe); err != nil {
		return l, err
	}
	// Holders start in parallel: each spends most of its time in connect and
	// accept on the loopback.
	l.holders = make([]*exec.Cmd, holders)
	l.specs = make([]hold.Spec, holders)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	for i := 0; i < holders; i++ {
		c := exec.Command(holdExe, append(append([]string{"hold"}, holdArgs(spec)...), secs)...)
		c.SysProcAttr = childAttr(0, 0)
		in, err := c.StdinPipe()
		if err != nil {
			return l, err
		}
		out, err := c.StdoutPipe()
		if err != nil {
			return l, err
		}
		if err := c.Start(); err != nil {
			return l, err
		}
		l.holders[i], l.specs[i] = c, spec
		l.stdins = append(l.stdins, in)
		wg.Add(1)
		go func() {
			defer wg.Done()
			line, err := bufio.NewReader(out).ReadString('\n')
			if strings.TrimSpace(line) != "ready" {
				mu.Lock()
				errs = append(errs, fmt.Errorf("holder %d: %q %v", i, strings.TrimSpace(line), err))
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(errs) > 0 {
		return l, errors.Join(errs...)
	}
	// A sleeper's comm is its symlink's name only once exec is done.
	deadline := time.Now().Add(60 * time.Second)
	for _, c := range l.sleepers {
		for {
			b, _ := os.ReadFile("/proc/" + strconv.Itoa(c.Process.Pid) + "/comm")
			if strings.HasPrefix(string(b), "pkt-b-") {
				break
			}
			if time.Now().After(deadline) || ctx.Err() != nil {
				return l, fmt.Errorf("sleeper %d never exec'd", c.Process.Pid)
			}
			time.Sleep(2 * time.Millisecond)
		}
	}
	return l, nil
}

// measurement is one timed run of a command.
type measurement struct {
	wall   time.Duration
	maxRSS int64 // KiB, from wait4's rusage
}

func timeCmd(ctx context.Context, name string, args ...string) (measurement, error) {
	c := exec.CommandContext(ctx, name, args...)
	c.Stdout = nil // /dev/null
	var stderr strings.Builder
	c.Stderr = &stderr
	t0 := time.Now()
	err := c.Run()
	m := measurement{wall: time.Since(t0)}
	if c.ProcessState != nil {
		if ru, ok := c.ProcessState.SysUsage().(*syscall.Rusage); ok {
			m.maxRSS = ru.Maxrss
		}
	}
	if err != nil {
		return m, fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return m, nil
}

func median(d []time.Duration) time.Duration {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond)) }

func run(args []string) int {
	fs := flag.NewFlagSet("benchsnapshot", flag.ContinueOnError)
	picket := fs.String("picket", "", "the picket binary to time (built with CGO_ENABLED=0)")
	tmpdir := fs.String("tmpdir", "", "where the load's symlinks go (default: $TMPDIR)")
	procs := fs.Int("procs", 3000, "sleeping processes to start (three user × comm groups)")
	holders := fs.Int("holders", 6, "socket-holding processes")
	unixPairs := fs.Int("unix-pairs", 1000, "unix socketpairs per holder (2 sockets each)")
	udpBound := fs.Int("udp", 1200, "UDP sockets bound on 127.0.0.1 per holder")
	udpUnbound := fs.Int("udp-unbound", 20, "unbound UDP sockets per holder (in no table: the xattr fallback)")
	tcpPairs := fs.Int("tcp-pairs", 1000, "TCP loopback connections per holder (2 sockets each, plus one listener)")
	rounds := fs.Int("rounds", 15, "alternating rounds (0: only build and verify the load, e.g. with -then)")
	maxTime := fs.Duration("max-time", 15*time.Minute, "every load process exits by itself after this")
	noLsof := fs.Bool("no-lsof", false, "skip the lsof reference")
	base := fs.String("baseline", "", "another picket binary (e.g. an older commit's) to time in the same rounds; \"self\" is the -picket binary again (with -baseline-args)")
	pArgs := fs.String("picket-args", "", "more arguments for picket snapshot --json (space-separated, e.g. \"--collector bpf\")")
	bArgs := fs.String("baseline-args", "", "more arguments for the baseline's snapshot --json (e.g. \"--collector proc\")")
	twN := fs.Int("time-wait", 0, "keep at least this many loopback TCP sockets in TIME_WAIT through the rounds (topped up before each: they last 60 s)")
	bpffs := fs.Bool("bpffs", false, "mount a BPF filesystem on /sys/fs/bpf for the run where none is (as systemd does at boot), so that picket pins its iterators at the first run and opens them from their pins after; the pins and the mount go at the end")
	holdCmd := fs.String("then", "", "after timing, with the load still up, run this program (no shell) with the remaining arguments, e.g. go test -bench")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *picket == "" {
		fmt.Fprintln(os.Stderr, "benchsnapshot: -picket BINARY is required")
		return 2
	}
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "benchsnapshot: run as root (sleepers run under nobody and daemon; picket must read every fd/)")
		return 2
	}
	spec := hold.Spec{UnixPairs: *unixPairs, UDPBound: *udpBound, UDPUnbound: *udpUnbound, TCPPairs: *tcpPairs}
	if perHolder := spec.Want().Sum() + 16; perHolder > 19000 {
		fmt.Fprintf(os.Stderr, "benchsnapshot: %d fds per holder is too close to RLIMIT_NOFILE; use more holders\n", perHolder)
		return 2
	}
	if *base == "self" {
		*base = *picket
	}
	picketCmd := append([]string{"snapshot", "--json"}, strings.Fields(*pArgs)...)
	baseCmd := append([]string{"snapshot", "--json"}, strings.Fields(*bArgs)...)
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer cancel()
	closeInherited()

	// Two loads at once (two runs, or another script that uses this load)
	// would spoil both measurements and every count check.
	if n := countLoad(); n > 0 {
		fmt.Fprintf(os.Stderr, "benchsnapshot: %d pkt-b-* processes are up already: another benchmark is running; try again when it ends\n", n)
		return 1
	}
	t0 := time.Now()
	l, err := startLoad(ctx, *tmpdir, *procs, *holders, spec, *maxTime)
	defer l.stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchsnapshot: load:", err)
		return 1
	}
	wantSockets := spec.Want().Sum() * *holders
	fmt.Printf("load: %d sleepers (%d user × comm groups), %d holders × %d sockets = %d sockets; up in %.1f s\n",
		len(l.sleepers), len(l.groups), *holders, spec.Want().Sum(), wantSockets, time.Since(t0).Seconds())

	if *bpffs {
		undo, err := mountBPFFS()
		if err != nil {
			fmt.Fprintln(os.Stderr, "benchsnapshot: -bpffs:", err)
			return 1
		}
		defer undo()
	}
	ok := verify(ctx, *picket, l)
	var tw *timeWait
	if *twN > 0 {
		if tw, err = newTimeWait(*twN); err != nil {
			fmt.Fprintln(os.Stderr, "benchsnapshot: time-wait:", err)
			return 1
		}
		defer tw.close()
	}

	var tp, tps, tss, tpeer, tl, tb []time.Duration
	var rss []int64
	for r := 0; r < *rounds; r++ {
		if ctx.Err() != nil {
			fmt.Fprintln(os.Stderr, "benchsnapshot: interrupted")
			return 130
		}
		if tw != nil {
			n, err := tw.topUp(ctx)
			if err != nil || n < *twN {
				fmt.Fprintf(os.Stderr, "benchsnapshot: time-wait: %d of %d (%v)\n", n, *twN, err)
				return 1
			}
			fmt.Printf("round %2d: %d TIME_WAIT sockets on the loopback\n", r+1, n)
		}
		m, err := timeCmd(ctx, *picket, picketCmd...)
		if err != nil {
			fmt.Fprintln(os.Stderr, "benchsnapshot:", err)
			return 1
		}
		tp = append(tp, m.wall)
		rss = append(rss, m.maxRSS)
		mps, err := timeCmd(ctx, "sh", "-c", "ps -eo user,comm | sort | uniq -c")
		if err != nil {
			fmt.Fprintln(os.Stderr, "benchsnapshot:", err)
			return 1
		}
		mss, err := timeCmd(ctx, "ss", "-tuaxp")
		if err != nil {
			fmt.Fprintln(os.Stderr, "benchsnapshot:", err)
			return 1
		}
		tps, tss = append(tps, mps.wall), append(tss, mss.wall)
		tpeer = append(tpeer, mps.wall+mss.wall)
		if !*noLsof {
			ml, err := timeCmd(ctx, "lsof", "-n", "-P", "-U", "-i")
			// lsof exits 1 when some file could not be listed; its timing
			// still counts.
			if err != nil && ml.wall == 0 {
				fmt.Fprintln(os.Stderr, "benchsnapshot:", err)
				return 1
			}
			tl = append(tl, ml.wall)
		}
		if *base != "" {
			mb, err := timeCmd(ctx, *base, baseCmd...)
			if err != nil {
				fmt.Fprintln(os.Stderr, "benchsnapshot: baseline:", err)
				return 1
			}
			tb = append(tb, mb.wall)
		}
		fmt.Printf("round %2d: picket %s  ps %s + ss %s = %s", r+1, ms(m.wall), ms(mps.wall), ms(mss.wall), ms(mps.wall+mss.wall))
		if len(tb) > 0 {
			fmt.Printf("  baseline %s", ms(tb[len(tb)-1]))
		}
		if len(tl) > 0 {
			fmt.Printf("  lsof %s", ms(tl[len(tl)-1]))
		}
		fmt.Println()
	}
	if *rounds > 0 {
		report(*rounds, len(l.sleepers)+*holders, wantSockets, tp, tps, tss, tpeer, tl, tb, rss)
	}

	if *holdCmd != "" {
		c := exec.CommandContext(ctx, *holdCmd, fs.Args()...)
		c.Stdout, c.Stderr = os.Stdout, os.Stderr
		fmt.Printf("\nwith the load up: %s %s\n", *holdCmd, strings.Join(fs.Args(), " "))
		if err := c.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "benchsnapshot:", err)
			return 1
		}
	}
	if !ok {
		return 1
	}
	return 0
}

// report prints the medians, ratios and picket's peak RSS.
func report(rounds, procs, wantSockets int, tp, tps, tss, tpeer, tl, tb []time.Duration, rss []int64) {
	sort.Slice(rss, func(i, j int) bool { return rss[i] < rss[j] })
	mp, mpeer := median(tp), median(tpeer)
	fmt.Printf("\nmedians of %d alternating rounds (%d processes, %d sockets):\n", rounds, procs, wantSockets)
	fmt.Printf("  %-34s %10s\n", "picket snapshot --json", ms(mp))
	fmt.Printf("  %-34s %10s\n", "ps -eo user,comm | sort | uniq -c", ms(median(tps)))
	fmt.Printf("  %-34s %10s\n", "ss -tuaxp", ms(median(tss)))
	fmt.Printf("  %-34s %10s\n", "ps + ss", ms(mpeer))
	if len(tl) > 0 {
		fmt.Printf("  %-34s %10s\n", "lsof -n -P -U -i", ms(median(tl)))
	}
	if len(tb) > 0 {
		fmt.Printf("  %-34s %10s\n", "baseline picket snapshot --json", ms(median(tb)))
	}
	fmt.Printf("ratio picket/(ps+ss): %.3f (1/%.1f; target ≤ 1/6)\n", float64(mp)/float64(mpeer), float64(mpeer)/float64(mp))
	if len(tl) > 0 {
		ml := median(tl)
		fmt.Printf("ratio picket/lsof:    %.3f (1/%.1f)\n", float64(mp)/float64(ml), float64(ml)/float64(mp))
	}
	if len(tb) > 0 {
		fmt.Printf("ratio baseline/(ps+ss): %.3f; picket/baseline: %.3f\n", float64(median(tb))/float64(mpeer), float64(mp)/float64(median(tb)))
	}
	fmt.Printf("picket peak RSS: median %.1f MiB, max %.1f MiB (target ≤ 30 MiB)\n",
		float64(rss[len(rss)/2])/1024, float64(rss[len(rss)-1])/1024)
}

// countLoad counts the processes of a load (their comms start "pkt-b-").
func countLoad() int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	n := 0
	for _, e := range ents {
		if b, err := os.ReadFile("/proc/" + e.Name() + "/comm"); err == nil && strings.HasPrefix(string(b), "pkt-b-") {
			n++
		}
	}
	return n
}

// closeInherited marks every fd above stderr close-on-exec: os/exec passes
// on whatever the shell that started us left open, and 3,000 sleepers would
// each hold those too, which is not the load meant (nor a real host's).
func closeInherited() {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return
	}
	for _, e := range ents {
		if fd, err := strconv.Atoi(e.Name()); err == nil && fd > 2 {
			unix.CloseOnExec(fd)
		}
	}
}

// mountBPFFS mounts a BPF filesystem on /sys/fs/bpf unless one is there,
// and returns what removes picket's pins from it (and the mount, if it
// made it).
func mountBPFFS() (func(), error) {
	const dir = "/sys/fs/bpf"
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return nil, err
	}
	mounted := false
	if uint32(st.Type) != unix.BPF_FS_MAGIC {
		if err := unix.Mount("bpf", dir, "bpf", 0, "mode=0700"); err != nil {
			return nil, fmt.Errorf("mount a BPF filesystem on %s: %w", dir, err)
		}
		mounted = true
		fmt.Printf("bpffs: mounted on %s for this run\n", dir)
	}
	_, had := os.Lstat(dir + "/picket")
	return func() {
		if had != nil {
			os.RemoveAll(dir + "/picket")
		}
		if mounted {
			unix.Unmount(dir, unix.MNT_DETACH)
		}
	}, nil
}

// verify runs picket once and checks it against the load: the sleeper
// groups and every holder's per-type counts exactly, the totals against
// ss's count (roughly: ss does not list unbound sockets, and the two read at
// different instants).
func verify(ctx context.Context, picket string, l *load) bool {
	out, err := exec.CommandContext(ctx, picket, "snapshot", "--json").Output()
	if err != nil {
		fmt.Println("verify: picket:", err)
		return false
	}
	var s snapshot.Snapshot
	if err := json.Unmarshal(out, &s); err != nil {
		fmt.Println("verify: decode:", err)
		return false
	}
	fmt.Printf("verify: collector %s, process collector %s, bpf programs %q\n", s.Collector, s.ProcessCollector, s.BPFPrograms)
	ok := true
	for _, g := range l.groups {
		got := 0
		for _, pg := range s.Processes.Groups {
			if pg.Comm == g.comm && pg.User == g.user {
				got += pg.Count
			}
		}
		if got != g.n {
			fmt.Printf("verify: MISMATCH group %s × %s: picket %d, load %d\n", g.user, g.comm, got, g.n)
			ok = false
		}
	}
	holders := map[int]snapshot.Holder{}
	for _, h := range s.Sockets.Processes {
		holders[h.PID] = h
	}
	var held snapshot.SocketCounts
	for i, c := range l.holders {
		h, found := holders[c.Process.Pid]
		want := l.specs[i].Want()
		if !found || h.SocketCounts != want || h.Comm != "pkt-b-holder" {
			fmt.Printf("verify: MISMATCH holder %d: picket %+v (%q), load %+v\n", c.Process.Pid, h.SocketCounts, h.Comm, want)
			ok = false
		}
		held.TCP += want.TCP
		held.UDP += want.UDP
		held.Unix += want.Unix
	}
	ssOut, err := exec.CommandContext(ctx, "ss", "-tuaxH").Output()
	if err != nil {
		fmt.Println("verify: ss:", err)
		return false
	}
	var ssc snapshot.SocketCounts
	for _, line := range strings.Split(string(ssOut), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		switch {
		case f[0] == "tcp":
			ssc.TCP++
		case f[0] == "udp":
			ssc.UDP++
		case strings.HasPrefix(f[0], "u_"):
			ssc.Unix++
		}
	}
	unbound := l.specs[0].UDPUnbound * len(l.holders)
	t := s.Sockets.Totals
	near := func(a, b, slack int) bool { d := a - b; return d >= -slack && d <= slack }
	slack := wantSlack(ssc.Sum())
	if !near(t.TCP, ssc.TCP, slack) || !near(t.UDP-unbound, ssc.UDP, slack) || !near(t.Unix, ssc.Unix, slack) {
		fmt.Printf("verify: MISMATCH totals: picket tcp %d udp %d (incl. %d unbound) unix %d; ss tcp %d udp %d unix %d\n",
			t.TCP, t.UDP, unbound, t.Unix, ssc.TCP, ssc.UDP, ssc.Unix)
		ok = false
	}
	fmt.Printf("verify: picket sees %d processes; sleeper groups exact; %d holders exact (%d tcp, %d udp, %d unix each)\n",
		s.Processes.Total, len(l.holders), l.specs[0].Want().TCP, l.specs[0].Want().UDP, l.specs[0].Want().Unix)
	fmt.Printf("verify: totals picket tcp %d udp %d unix %d (sum %d) vs ss tcp %d udp %d(+%d unbound) unix %d; load holds %d",
		t.TCP, t.UDP, t.Unix, t.Sum(), ssc.TCP, ssc.UDP, unbound, ssc.Unix, held.Sum())
	if ok {
		fmt.Println(" — ok")
	} else {
		fmt.Println(" — FAILED")
	}
	return ok
}

// wantSlack is how far picket's and ss's totals may differ: sockets of the
// rest of the system come and go between the two reads.
func wantSlack(n int) int {
	if s := n / 200; s > 20 {
		return s
	}
	return 20
}
