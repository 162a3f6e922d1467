package act

import (
	"encoding/binary"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/picket-guard/picket/internal/hostcap"
	"github.com/picket-guard/picket/internal/testkit"
)

// fixtureRoot is a tree with passwd, group and utmp: alice (uid 1000, in
// sudo) is logged in with login process 4242, bob (uid 1001) with 4343.
func fixtureRoot(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	for _, d := range []string{"proc/sys/net/ipv4", "etc", "run"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write := func(p, s string) {
		if err := os.WriteFile(filepath.Join(root, p), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("etc/passwd", "root:x:0:0::/root:/bin/sh\nalice:x:1000:1000::/home/alice:/bin/sh\nbob:x:1001:1001::/home/bob:/bin/sh\nimap:x:1002:1002::/:/usr/sbin/nologin\n")
	write("etc/group", "root:x:0:\nsudo:x:27:alice\nalice:x:1000:\nbob:x:1001:\n")
	write("proc/sys/net/ipv4/tcp_max_orphans", "65536\n")
	write("proc/sys/net/ipv4/tcp_mem", "1000\t2000\t3000\n")
	var utmp []byte
	for _, l := range []utmpLogin{{"alice", 4242}, {"bob", 4343}} {
		rec := make([]byte, utmpSize)
		binary.NativeEndian.PutUint16(rec[0:], utmpUserProcess)
		binary.NativeEndian.PutUint32(rec[utmpPIDOff:], uint32(l.pid))
		copy(rec[utmpUserOff:], l.user)
		utmp = append(utmp, rec...)
	}
	write("run/utmp", string(utmp))
	return root
}

func TestGuard(t *testing.T) {
	root := fixtureRoot(t)
	// /proc/PID/exe as the kernel shows it: a symlink to the executable.
	for pid, exe := range map[int]string{50: "/usr/sbin/sshd", 51: "/lib/systemd/systemd", 52: "/usr/lib/postgresql/bin/postgres",
		54: "/usr/sbin/sshd (deleted)", 55: "/usr/sbin/sshd", 56: "/usr/lib/postgresql/bin/postgres"} {
		d := filepath.Join(root, "proc", strconv.Itoa(pid))
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(exe, filepath.Join(d, "exe")); err != nil {
			t.Fatal(err)
		}
	}
	for pid, cg := range map[int]string{70: "/system.slice/postgresql.service", 71: "/user.slice/user-1001.slice/user@1001.service/app.slice/postgresql.service"} {
		d := filepath.Join(root, "proc", strconv.Itoa(pid))
		os.MkdirAll(d, 0o755)
		if err := os.WriteFile(filepath.Join(d, "cgroup"), []byte("0::"+cg+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	r := newRunner(t, Options{Root: root, DryRun: true, Protected: Protected{Exes: []string{"/usr/lib/postgresql/bin/postgres"}, Units: []string{"postgresql.service"}, Users: []string{"imap"}, PIDs: []int{777}}})
	g := r.newGuard()
	cases := []struct {
		p    proc
		want string
	}{
		{proc{pid: 1, comm: "init"}, "pid 1"},
		{proc{pid: 2, comm: "kthreadd", kthread: true}, "kernel thread"},
		{proc{pid: 50, comm: "sshd", uid: 0}, "protected executable /usr/sbin/sshd"},
		{proc{pid: 51, comm: "systemd", uid: 0}, "protected executable /lib/systemd/systemd"},
		{proc{pid: 52, comm: "postgres", uid: 0}, "protected executable /usr/lib/postgresql/bin/postgres"},
		{proc{pid: 54, comm: "sshd", uid: 0}, "protected executable /usr/sbin/sshd"}, // upgraded under it
		// Names are chosen by the process: a user's sshd, systemd or
		// picket is theirs, and so is the sshd binary a user runs.
		{proc{pid: 55, comm: "sshd", uid: 1001}, ""},
		{proc{pid: 56, comm: "postgres", uid: 1001}, ""},
		{proc{pid: 57, comm: "sshd", uid: 0}, ""}, // root, but not the sshd binary
		{proc{pid: 58, comm: "systemd", uid: 1000}, ""},
		{proc{pid: 59, comm: "picket", uid: 1000}, ""},
		{proc{pid: 70, comm: "postgres", uid: 1001}, "protected unit postgresql.service"},
		{proc{pid: 71, comm: "postgres", uid: 1001}, ""}, // a user's own unit of that name
		{proc{pid: 777, comm: "sleep", uid: 1001}, "protected pid"},
		{proc{pid: 53, comm: "imapd", uid: 1002}, "protected user"},
		{proc{pid: 4242, comm: "bash", uid: 1000}, "login shell of logged-in administrator alice"},
		{proc{pid: 4343, comm: "bash", uid: 1001}, ""}, // bob is no administrator
		{proc{pid: 60, sid: 60, tty: 34816, comm: "bash", uid: 0}, "login shell of an administrator"},
		{proc{pid: 61, sid: 60, tty: 34816, comm: "vim", uid: 0}, ""}, // the shell, not its children
		{proc{pid: 62, sid: 62, tty: 34817, comm: "bash", uid: 1001}, ""},
		{proc{pid: 99, comm: "imapd", uid: 1001}, ""},
	}
	for _, c := range cases {
		if got := g.refuse(c.p); got != c.want {
			t.Errorf("refuse(pid %d %s uid %d) = %q, want %q", c.p.pid, c.p.comm, c.p.uid, got, c.want)
		}
	}
	if why := g.refuseAll([]proc{{pid: 99, comm: "imapd"}, {pid: 777, comm: "sleep"}}); !strings.Contains(why, "777") {
		t.Errorf("refuseAll = %q", why)
	}
	if _, err := NewRunner(Options{Root: fixtureRoot(t), DryRun: true, Protected: Protected{Users: []string{"nosuchuser"}}}); err == nil {
		t.Error("an unknown protected user was accepted")
	}
}

func TestGuardLiveProtectsPicketAndAncestors(t *testing.T) {
	r := newRunner(t, Options{DryRun: true})
	g := r.newGuard()
	me, err := r.procs.read(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if g.refuse(me) == "" {
		t.Error("picket itself is not protected")
	}
	parent, err := r.procs.read(me.ppid)
	if err == nil && g.refuse(parent) == "" {
		t.Errorf("picket's parent %d (%s) is not protected", parent.pid, parent.comm)
	}
}

// TestSignalChecksStartTime: a selected process whose pid now shows
// another start time is not signalled (the recycled-pid guard, unit level:
// the pid here is the same process, the recorded start time is not).
func TestSignalChecksStartTime(t *testing.T) {
	for _, v := range hostVariants(t, hostcap.Pidfd) {
		t.Run(v.name, func(t *testing.T) { testSignalChecksStartTime(t, v.host) })
	}
}

// testSignalChecksStartTime is TestSignalChecksStartTime on a host as host describes it.
func testSignalChecksStartTime(t *testing.T, host *hostcap.Set) {
	r := newRunner(t, Options{DryRun: true, Host: host})
	c := spawn(t, -1, nil, "/bin/sleep", "60")
	p, err := r.procs.read(c.pid)
	if err != nil {
		t.Fatal(err)
	}
	stale := p
	stale.start++
	if out, err := r.signal(stale, unix.SIGKILL); out != recycled || err != nil {
		t.Errorf("signal with another start time = %v, %v; want recycled", out, err)
	}
	other := p
	other.comm = "imapd"
	if out, _ := r.signal(other, unix.SIGKILL); out != changed {
		t.Errorf("signal after exec (comm differs) = %v; want changed", out)
	}
	time.Sleep(50 * time.Millisecond)
	if !c.alive() {
		t.Fatal("the process was signalled anyway")
	}
	if out, err := r.signal(p, unix.SIGKILL); out != sent || err != nil {
		t.Fatalf("signal to the right process = %v, %v", out, err)
	}
	if !c.waitExit(5 * time.Second) {
		t.Fatal("not killed")
	}
	if out, _ := r.signal(p, unix.SIGKILL); out != gone {
		t.Errorf("signal to an exited process = %v; want gone", out)
	}
	if out, err := r.signal(proc{pid: 1, comm: "init"}, unix.SIGTERM); out == sent || err == nil {
		t.Error("pid 1 was signalled")
	}
	// Rule 5: a fixture root signals nothing.
	fr := newRunner(t, Options{Root: fixtureRoot(t), DryRun: true, Host: host})
	if _, err := fr.signal(p, unix.SIGTERM); !errors.Is(err, errFixture) {
		t.Errorf("fixture root signal: %v", err)
	}
}

// TestRecycledPID makes the kernel hand a selected process's pid to a new
// process (ns_last_pid) and checks the new one is not hit.
func TestRecycledPID(t *testing.T) {
	for _, v := range hostVariants(t, hostcap.Pidfd) {
		t.Run(v.name, func(t *testing.T) { testRecycledPID(t, v.host) })
	}
}

// testRecycledPID is TestRecycledPID on a host as host describes it.
func testRecycledPID(t *testing.T, host *hostcap.Set) {
	needRoot(t, "writes /proc/sys/kernel/ns_last_pid")
	r := newRunner(t, Options{DryRun: true, Host: host})
	for attempt := 0; attempt < 30; attempt++ {
		a := spawn(t, -1, nil, "/bin/sleep", "60")
		pa, err := r.procs.read(a.pid)
		if err != nil {
			t.Fatal(err)
		}
		syscall.Kill(a.pid, syscall.SIGKILL)
		a.waitExit(5 * time.Second)
		time.Sleep(30 * time.Millisecond) // a later clock tick: start times differ
		// The next fork gets ns_last_pid+1, unless another fork on the host
		// wins the race: then try again.
		if err := os.WriteFile("/proc/sys/kernel/ns_last_pid", []byte(strconv.Itoa(a.pid-1)), 0); err != nil {
			t.Skipf("cannot write ns_last_pid: %v", err)
		}
		b := exec.Command("/bin/sleep", "60")
		if err := b.Start(); err != nil {
			t.Fatal(err)
		}
		if b.Process.Pid != a.pid {
			b.Process.Kill()
			b.Wait()
			continue
		}
		defer func() { b.Process.Kill(); b.Wait() }()
		time.Sleep(10 * time.Millisecond)
		out, err := r.signal(pa, unix.SIGKILL)
		if out != recycled || err != nil {
			pb, _ := r.procs.read(b.Process.Pid)
			if pb.start == pa.start {
				t.Skip("both processes started in the same clock tick; start times cannot tell them apart")
			}
			t.Fatalf("signal to the recycled pid = %v, %v; want recycled", out, err)
		}
		if b.ProcessState != nil || syscall.Kill(b.Process.Pid, 0) != nil {
			t.Fatal("the new owner of the pid was hit")
		}
		t.Logf("pid %d recycled on attempt %d; the new process was left alone", a.pid, attempt+1)
		return
	}
	t.Skip("could not get the pid recycled in 30 attempts (a busy host)")
}

func TestLimiter(t *testing.T) {
	l := newLimiter(Limits{PerRule: Limit{Actions: 2, Window: time.Minute}, Global: Limit{Actions: 3, Window: time.Minute},
		Rules: map[string]Limit{"free": {Actions: -1}}})
	t0 := time.Unix(1000, 0)
	for i := 0; i < 2; i++ {
		if err, _ := l.take("a", t0); err != nil {
			t.Fatal(err)
		}
	}
	err, first := l.take("a", t0)
	if !errors.Is(err, ErrRateLimited) || !first {
		t.Fatalf("third action of rule a: %v first=%v", err, first)
	}
	if err, first := l.take("a", t0); err == nil || first {
		t.Errorf("fourth: %v first=%v (the alarm is raised once per trip)", err, first)
	}
	if err, _ := l.take("free", t0); err != nil {
		t.Errorf("rule with no per-rule limit: %v", err)
	}
	if err, _ := l.take("free", t0); err == nil || !strings.Contains(err.Error(), "all rules") {
		t.Errorf("global limit: %v", err)
	}
	if err, _ := l.take("a", t0.Add(time.Minute)); err != nil {
		t.Errorf("after the window: %v", err)
	}
}

func TestRateLimitedResult(t *testing.T) {
	dir := t.TempDir()
	var limited []string
	r := newRunner(t, Options{Root: fixtureRoot(t), StateDir: dir, Limits: Limits{PerRule: Limit{Actions: 1, Window: time.Hour}},
		OnLimit: func(rule string, err error) { limited = append(limited, rule) }})
	req := Request{Rule: "orphans", Spec: &SysctlSpec{Key: "net.ipv4.tcp_max_orphans", Value: "262144"}}
	if res := r.Do(t.Context(), req); res.Error != "" {
		t.Fatal(res.Error)
	}
	req.Spec = &SysctlSpec{Key: "net.ipv4.tcp_max_orphans", Value: "65536"}
	res := r.Do(t.Context(), req)
	if !res.RateLimited || res.Result != "rate-limited" || len(limited) != 1 {
		t.Fatalf("second action: %+v, OnLimit calls %v", res, limited)
	}
	if b, _ := os.ReadFile(filepath.Join(r.root, "proc/sys/net/ipv4/tcp_max_orphans")); strings.TrimSpace(string(b)) != "262144" {
		t.Errorf("the rate-limited action changed the value: %q", b)
	}
	if got := phases(journalOf(t, dir), res.ID); len(got) != 1 || got[0] != PhaseRefused {
		t.Errorf("journal of the refused action: %v", got)
	}
	// A dry run is never limited.
	req.DryRun = true
	if res := r.Do(t.Context(), req); res.RateLimited || !strings.HasPrefix(res.Result, "would set") {
		t.Errorf("dry run: %+v", res)
	}
}

func TestOpenBeneath(t *testing.T) {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "a/b"), 0o755)
	os.WriteFile(filepath.Join(root, "a/b/f"), []byte("x"), 0o644)
	os.WriteFile(filepath.Join(t.TempDir(), "outside"), []byte("secret"), 0o644)
	os.Symlink("b", filepath.Join(root, "a/link"))
	os.Symlink("/etc/passwd", filepath.Join(root, "a/b/passwd"))
	// With openat2, and as on a kernel without it (the walk by components).
	for _, openat2 := range []bool{true, false} {
		if f, err := openBeneathWith(openat2, root, "a/b/f", unix.O_RDONLY, 0); err != nil {
			t.Errorf("openat2 %v: plain file: %v", openat2, err)
		} else {
			f.Close()
		}
		for _, rel := range []string{"a/link/f", "a/b/passwd", "a/../../etc/passwd", "a/./b/f", "/etc/passwd", ""} {
			if f, err := openBeneathWith(openat2, root, rel, unix.O_RDONLY, 0); err == nil {
				f.Close()
				t.Errorf("openat2 %v: %q: opened", openat2, rel)
			} else if rel == "a/link/f" || rel == "a/b/passwd" {
				if !errors.Is(err, errRefusedPath) {
					t.Errorf("openat2 %v: %q: %v, want a refusal", openat2, rel, err)
				}
			}
		}
	}
	// The walk used where openat2 is missing refuses the same.
	rootfd, _ := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY, 0)
	defer unix.Close(rootfd)
	if _, err := openWalk(rootfd, "a/link/f", unix.O_RDONLY|unix.O_NOFOLLOW, 0); !errors.Is(err, unix.ELOOP) {
		t.Errorf("walk through a symlinked directory: %v", err)
	}
	if _, err := openWalk(rootfd, "a/b/passwd", unix.O_RDONLY|unix.O_NOFOLLOW, 0); !errors.Is(err, unix.ELOOP) {
		t.Errorf("walk to a symlink: %v", err)
	}
	if fd, err := openWalk(rootfd, "a/b/f", unix.O_RDONLY|unix.O_NOFOLLOW, 0); err != nil {
		t.Errorf("walk to a file: %v", err)
	} else {
		unix.Close(fd)
	}
}

func TestUnderRoot(t *testing.T) {
	roots := []string{"/var/mail"}
	if r, rel, err := underRoot("/var/mail/alice", roots); err != nil || r != "/var/mail" || rel != "alice" {
		t.Errorf("underRoot: %q %q %v", r, rel, err)
	}
	for _, p := range []string{"/var/mail/../../etc/shadow", "/var/mail/./x", "/var/mailx/alice", "/var/mail", "/var/mail//x", "var/mail/x", "/etc/passwd"} {
		if _, _, err := underRoot(p, roots); !errors.Is(err, errRefusedPath) {
			t.Errorf("underRoot(%q) = %v, want refused", p, err)
		}
	}
}

// TestGuardByIdentity: protection is by what a process is, not by the name
// it chose. A user's processes named sshd, systemd or picket are killed, and
// one of them in a process group no longer shields the group; a root
// process running a protected executable is refused, the same executable
// run by a user is not; a process named "{{x" is a process like any other.
func TestGuardByIdentity(t *testing.T) {
	needRoot(t, "runs processes as nobody and as root")
	nobodyAttr := &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
	r := newRunner(t, Options{})
	for _, comm := range []string{"sshd", "systemd", "picket", "init"} {
		cs := testkit.Sleepers(t, comm, 1, nobodyAttr)
		res := r.Do(t.Context(), Request{Spec: &KillSpec{Comm: comm, User: "nobody", Signal: "KILL"}})
		if got := anyInts(res.Targets); len(got) != 1 || got[0] != cs[0].Process.Pid || res.Error != "" {
			t.Errorf("nobody's %s: %+v, want pid %d killed", comm, res, cs[0].Process.Pid)
		}
	}

	// A group led by pkt-grplead holding nobody's "sshd".
	bin := testkit.NamedBin(t, "pkt-grplead", "sshd")
	lead := spawn(t, nobody, nil, "/bin/sh", "-c", "\""+filepath.Join(bin, "sshd")+"\" 600 & exec \""+filepath.Join(bin, "pkt-grplead")+"\" 600")
	var mate int
	waitFor(5*time.Second, func() bool {
		all, _ := r.procs.all()
		for _, p := range all {
			if p.comm == "sshd" && p.pgrp == lead.pid {
				mate = p.pid
			}
		}
		p, err := r.procs.read(lead.pid)
		return mate != 0 && err == nil && p.comm == "pkt-grplead"
	})
	res := r.Do(t.Context(), Request{Spec: &KillSpec{Comm: "pkt-grplead", Scope: "group", Signal: "KILL"}})
	if got := anyInts(res.Targets); !slices.Contains(got, mate) || !slices.Contains(got, lead.pid) {
		t.Errorf("group holding nobody's sshd: %+v, want %d and %d killed", res, lead.pid, mate)
	}

	// A protected executable: a copy of sleep at a path of its own (a
	// symlink would show sleep's path in /proc/PID/exe).
	dir := testkit.SharedDir(t)
	exe := filepath.Join(dir, "pkt-guarded")
	b, err := os.ReadFile(testkit.Need(t, "sleep", "coreutils"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(exe, b, 0o755); err != nil {
		t.Fatal(err)
	}
	pr := newRunner(t, Options{Protected: Protected{Exes: []string{exe}}})
	asRoot := spawn(t, -1, nil, exe, "600")
	testkit.WaitComm(t, asRoot.pid, "pkt-guarded")
	res = pr.Do(t.Context(), Request{Spec: &KillSpec{Comm: "pkt-guarded", User: "root", Signal: "KILL"}})
	if len(res.Targets) != 0 || !strings.Contains(res.Result, "protected executable "+exe) {
		t.Errorf("root running a protected executable: %+v", res)
	}
	asUser := spawn(t, nobody, nil, exe, "600")
	testkit.WaitComm(t, asUser.pid, "pkt-guarded")
	res = pr.Do(t.Context(), Request{Spec: &KillSpec{Comm: "pkt-guarded", Signal: "KILL"}})
	if got := anyInts(res.Targets); len(got) != 1 || got[0] != asUser.pid {
		t.Errorf("nobody running a protected executable: %+v, want only %d", res, asUser.pid)
	}
	time.Sleep(50 * time.Millisecond)
	if !asRoot.alive() {
		t.Error("root's protected executable was killed")
	}

	// A process named "{{x": the rule's template was {{.comm}}, rendered.
	odd := testkit.Sleepers(t, "{{x", 1, nobodyAttr)
	res = r.Do(t.Context(), Request{Spec: &KillSpec{Comm: "{{x", Signal: "KILL"}, Rendered: true})
	if got := anyInts(res.Targets); len(got) != 1 || got[0] != odd[0].Process.Pid || res.Error != "" {
		t.Errorf("a process named {{x: %+v", res)
	}
	// A spec that was never rendered is still refused.
	res = r.Do(t.Context(), Request{Spec: &KillSpec{Comm: "{{.comm}}"}})
	if !strings.Contains(res.Error, "placeholder") {
		t.Errorf("unrendered spec: %+v", res)
	}
}
