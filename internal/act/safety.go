package act

// The safety rules of every action, in one place (earlyoom's lesson: the
// decision must be small enough for an administrator to audit).
//
//  1. Never pid 1, never a kernel thread, never picket itself or any of its
//     ancestors (whatever started it: systemd, a shell, a test runner).
//  2. Never a protected process, known by what it is, never by its name
//     alone (any user can name a process sshd): by default a process of
//     root running a protected executable (/sbin/init, systemd, sshd,
//     sshd-session, picket's own binary: /proc/PID/exe, also when the file
//     was replaced by an upgrade and reads "PATH (deleted)"); the login
//     process of every utmp record of a logged-in administrator (root, or a
//     member of sudo, wheel or admin); and any session leader with a
//     terminal running as an administrator (logins that left no utmp
//     record: su, containers). Protected adds executables, systemd units
//     (outside user.slice, where users make their own), users, pids and
//     admin groups; NoDefaults drops the default executables (rule 1 and
//     the administrators' shells stay).
//  3. A kill scope (process group, cgroup) or a freeze tree holding a process
//     refused by rules 1-2 is refused whole; the root cgroup is never a scope.
//  4. A process is signalled only while it is still the one selected: a pidfd
//     is opened first, then /proc/PID/stat is read again and must show the
//     same start time, uid and command; the signal goes through the pidfd,
//     so a pid recycled after the check is never hit. Without pidfds (kernel
//     before 5.3, or a seccomp filter refusing them: hostcap's probe says)
//     the same check directly precedes kill(2), and one window remains:
//     between that read of stat and kill(2) — microseconds, no allocation,
//     no lock — the process would have to exit, be reaped by its parent,
//     and its pid be handed to a new process, which takes the kernel
//     cycling through every other free pid up to pid_max first.
//  5. Nothing is signalled or frozen when Root is not "/": pids read from a
//     fixture tree are not this host's (those actions are refused; dry runs
//     still show what they would select).
//  6. At most Limits.PerRule actions per rule and Limits.Global actions in all
//     per window; past that an action is refused as rate-limited, and
//     OnLimit is called once. Dry runs and actions that change nothing (no
//     target left) do not count.
//  7. Every change is journaled (fsynced) before it is made, with what undoes
//     it; when the journal cannot be written nothing is done.
//  8. Files (archive, sysctl) are opened beneath a configured root with
//     openat2(RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS), or component by component
//     with O_NOFOLLOW where openat2 is missing; "." and ".." components are
//     refused, never cleaned away. An archive never overwrites: an O_EXCL
//     temporary file, then a rename that refuses to replace.
//  9. exec runs an absolute argv[0] fixed in the configuration, never a
//     shell; untrusted values reach it only as whole arguments or PICKET_*
//     environment variables, and an argument a placeholder begins may not
//     begin with "-" unless a configured "--" precedes it. The child gets
//     none of picket's own oom_score_adj, raised fd limit, or ambient and
//     inheritable capabilities (exec_shim.go).
//  10. A kill round signals at most its max_targets processes (default
//     100); a larger selection is refused whole, nothing signalled.
//  11. A throttle never cuts the administrator's way in: port 22 and
//     picket's own HTTP port are refused unless the spec says force: true.
//
// Rules 1-6 and 8 are implemented in this file; 7 in journal.go's callers
// (op.intent), 9 in spec.go (ExecSpec.Validate) and exec.go, 10 in kill.go
// (tooMany), 11 in throttle.go.

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/picket-guard/picket/internal/hostcap"
)

// Protected configures rule 2.
type Protected struct {
	// Exes are executable paths whose processes are never touched when they
	// run as root (a user may run /usr/sbin/sshd too: that one is theirs).
	Exes []string `yaml:"exes" json:"exes,omitempty"`
	// Units are systemd units whose processes are never touched: a process
	// whose cgroup path has the unit as a component, outside user.slice.
	Units       []string `yaml:"units" json:"units,omitempty"`
	Users       []string `yaml:"users" json:"users,omitempty"` // names or uids: none of their processes
	PIDs        []int    `yaml:"pids" json:"pids,omitempty"`
	AdminGroups []string `yaml:"admin_groups" json:"admin_groups,omitempty"` // default sudo, wheel, admin
	NoDefaults  bool     `yaml:"no_defaults" json:"no_defaults,omitempty"`
}

// Validate checks a protect: list from a configuration file. Pids are
// refused there: the kernel reuses them, and a pid written in a file ends
// up protecting whatever runs under it next.
func (p *Protected) Validate() error {
	var errs []error
	for _, e := range p.Exes {
		if !filepath.IsAbs(e) || filepath.Clean(e) != e {
			errs = append(errs, fmt.Errorf("exes: %q is not a clean absolute path (as /proc/PID/exe shows it, e.g. /usr/sbin/mysqld)", e))
		}
	}
	for _, u := range p.Units {
		if u == "" || strings.ContainsAny(u, "/ \t\n") || !strings.Contains(u, ".") {
			errs = append(errs, fmt.Errorf("units: %q is not a unit name (e.g. mysql.service, system-postgresql.slice)", u))
		}
	}
	for _, u := range p.Users {
		if u == "" {
			errs = append(errs, errors.New("users: an empty name"))
		}
	}
	for _, g := range p.AdminGroups {
		if g == "" {
			errs = append(errs, errors.New("admin_groups: an empty name"))
		}
	}
	if len(p.PIDs) > 0 {
		errs = append(errs, errors.New("pids: the kernel reuses pids; protect the process by exes, units or users"))
	}
	return errors.Join(errs...)
}

// DefaultProtectedExes are the executables whose root processes are never
// signalled unless NoDefaults (picket's own binary is added to them): init
// and systemd where distributions install them, and sshd with the
// per-session binary OpenSSH 9.8 split off.
func DefaultProtectedExes() []string {
	return []string{
		"/sbin/init", "/usr/sbin/init", "/lib/systemd/systemd", "/usr/lib/systemd/systemd",
		"/usr/sbin/sshd", "/usr/lib/openssh/sshd-session", "/usr/libexec/openssh/sshd-session", "/usr/lib/ssh/sshd-session",
	}
}

var defaultAdminGroups = []string{"sudo", "wheel", "admin"}

// guard answers rules 1-3 for the processes of one action; it is built per
// action, so logins and ancestry are current.
type guard struct {
	self   map[int]bool
	pids   map[int]string
	exes   map[string]bool
	units  []string
	uids   map[uint32]bool
	admins map[uint32]bool
	procs  procFS
	// selfExe is picket's own binary: another picket running it is
	// protected, picket's own children running it (the exec shim, helpers)
	// are picket's to stop.
	selfExe string
}

func (r *Runner) newGuard() *guard {
	p, uids := r.protection()
	g := &guard{self: map[int]bool{}, pids: map[int]string{}, exes: map[string]bool{}, units: p.Units, uids: uids, procs: r.procs}
	if !p.NoDefaults {
		for _, e := range DefaultProtectedExes() {
			g.exes[e] = true
			// A distribution with a merged /usr (/sbin -> usr/sbin) shows
			// the resolved path in /proc/PID/exe.
			if real, err := filepath.EvalSymlinks(filepath.Join(r.root, e)); err == nil {
				if rel, err := filepath.Rel(r.root, real); err == nil {
					g.exes["/"+rel] = true
				}
			}
		}
		if self, err := os.Executable(); err == nil && r.live {
			g.exes[self] = true
			g.selfExe = self
		}
	}
	for _, e := range p.Exes {
		g.exes[e] = true
	}
	for _, pid := range p.PIDs {
		g.pids[pid] = "protected pid"
	}
	groups := p.AdminGroups
	if len(groups) == 0 {
		groups = defaultAdminGroups
	}
	g.admins = r.procs.adminUIDs(groups)
	for _, l := range readUtmp(r.root) {
		if uid, err := r.procs.lookupUID(l.user); err == nil && g.admins[uid] {
			g.pids[l.pid] = "login shell of logged-in administrator " + l.user
		}
	}
	if r.live {
		// Rule 1: picket and every ancestor, up to (and including) pid 1.
		for pid, n := os.Getpid(), 0; pid > 0 && n < 256; n++ {
			g.self[pid] = true
			p, err := r.procs.read(pid)
			if err != nil {
				break
			}
			pid = p.ppid
		}
	}
	return g
}

// refuse returns why p must not be touched, or "". The name a process
// chose (comm, argv) plays no part: only what the kernel says it is.
func (g *guard) refuse(p proc) string {
	switch {
	case p.pid <= 1:
		return "pid 1"
	case p.kthread:
		return "kernel thread"
	case g.self[p.pid]:
		return "picket or its ancestor"
	case g.pids[p.pid] != "":
		return g.pids[p.pid]
	case g.uids[p.uid]:
		return "protected user"
	case p.pid == p.sid && p.tty != 0 && g.admins[p.uid]:
		return "login shell of an administrator"
	}
	if p.uid == 0 && len(g.exes) > 0 {
		// The kernel's own name of the file the process runs; a file
		// replaced since (a package upgrade) reads "PATH (deleted)".
		if exe := strings.TrimSuffix(g.procs.exe(p.pid), " (deleted)"); exe != "" && g.exes[exe] && !(exe == g.selfExe && g.descendant(p)) {
			return "protected executable " + exe
		}
	}
	if len(g.units) > 0 {
		if cg := g.procs.cgroup(p.pid); !strings.HasPrefix(cg, "/user.slice/") {
			for _, u := range g.units {
				if inUnit(u, cg) {
					return "protected unit " + u
				}
			}
		}
	}
	return ""
}

// descendant reports whether p descends from picket (its parents, read
// again from /proc, lead to picket's pid).
func (g *guard) descendant(p proc) bool {
	self := os.Getpid()
	for pid, n := p.ppid, 0; pid > 1 && n < 256; n++ {
		if pid == self {
			return true
		}
		q, err := g.procs.read(pid)
		if err != nil {
			return false
		}
		pid = q.ppid
	}
	return false
}

// refuseAll is rule 3: the first reason any member is refused, or "".
func (g *guard) refuseAll(ps []proc) string {
	for _, p := range ps {
		if why := g.refuse(p); why != "" {
			return fmt.Sprintf("holds pid %d (%s)", p.pid, why)
		}
	}
	return ""
}

// outcome is what signal did.
type outcome int

const (
	sent     outcome = iota
	gone             // exited (or a zombie) before the signal
	recycled         // its pid now belongs to another process: not signalled
	changed          // same process, but it exec'd or changed user since selected: not signalled
)

var errFixture = errors.New("root is not \"/\": pids read from a fixture tree are not this host's")

// signal is rule 4 (and 1 and 5 once more, at the last moment).
func (r *Runner) signal(p proc, sig unix.Signal) (outcome, error) {
	if !r.live {
		return changed, errFixture
	}
	if p.pid <= 1 || p.kthread {
		return changed, fmt.Errorf("pid %d is never signalled", p.pid)
	}
	fd, pidfd := -1, false
	if r.host.Has(hostcap.Pidfd) {
		var err error
		fd, err = unix.PidfdOpen(p.pid, 0)
		if errors.Is(err, unix.ESRCH) {
			return gone, nil
		}
		if pidfd = err == nil; pidfd {
			defer unix.Close(fd)
		}
	}
	cur, err := r.procs.read(p.pid)
	switch {
	case err != nil || cur.gone():
		return gone, nil
	case cur.start != p.start:
		return recycled, nil
	case cur.uid != p.uid || cur.comm != p.comm:
		return changed, nil
	}
	if pidfd {
		err = unix.PidfdSendSignal(fd, sig, nil, 0)
	} else {
		err = unix.Kill(p.pid, sig)
	}
	if errors.Is(err, unix.ESRCH) {
		return gone, nil
	}
	if err != nil {
		return changed, fmt.Errorf("signal %s to pid %d: %w", signalName(sig), p.pid, err)
	}
	return sent, nil
}

// alive reports whether p is still the selected process and not a zombie.
func (r *Runner) alive(p proc) bool {
	cur, err := r.procs.read(p.pid)
	return err == nil && !cur.gone() && cur.start == p.start
}

// Limit is "at most Actions actions per Window". Actions < 0 is no limit.
type Limit struct {
	Actions int           `yaml:"actions" json:"actions"`
	Window  time.Duration `yaml:"window" json:"window"`
}

// Limits configures rule 6. Zero values take the defaults: 10 actions per
// rule and 30 in all per 10 minutes. Rules overrides PerRule by rule name.
type Limits struct {
	Global  Limit            `yaml:"global" json:"global"`
	PerRule Limit            `yaml:"per_rule" json:"per_rule"`
	Rules   map[string]Limit `yaml:"rules" json:"rules,omitempty"`
}

func (l Limit) or(def Limit) Limit {
	if l.Actions == 0 {
		l.Actions = def.Actions
	}
	if l.Window <= 0 {
		l.Window = def.Window
	}
	return l
}

var (
	defaultGlobalLimit  = Limit{Actions: 30, Window: 10 * time.Minute}
	defaultPerRuleLimit = Limit{Actions: 10, Window: 10 * time.Minute}
)

// ErrRateLimited is wrapped by the error a rate-limited action reports
// (Result.RateLimited is set too, and Options.OnLimit is called).
var ErrRateLimited = errors.New("rate-limited")

// limiter counts actions in sliding windows (rule 6), like Monit's "N
// restarts within M cycles": past the limit it refuses until the oldest
// action leaves the window.
type limiter struct {
	mu      sync.Mutex
	limits  Limits
	times   map[string][]time.Time // "" is the global window
	tripped map[string]bool
}

func newLimiter(l Limits) *limiter {
	l.Global = l.Global.or(defaultGlobalLimit)
	l.PerRule = l.PerRule.or(defaultPerRuleLimit)
	return &limiter{limits: l, times: map[string][]time.Time{}, tripped: map[string]bool{}}
}

// take records one action of rule at now. When a limit is reached it
// returns an error wrapping ErrRateLimited, and first is true the first
// time in a row that this limit refused.
func (l *limiter) take(rule string, now time.Time) (err error, first bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	per, ok := l.limits.Rules[rule]
	if ok {
		per = per.or(l.limits.PerRule)
	} else {
		per = l.limits.PerRule
	}
	checks := []struct {
		key, what string
		lim       Limit
	}{{"rule:" + rule, "rule " + rule, per}, {"", "all rules", l.limits.Global}}
	for _, c := range checks {
		if c.lim.Actions < 0 {
			continue
		}
		ts := l.times[c.key]
		for len(ts) > 0 && now.Sub(ts[0]) >= c.lim.Window {
			ts = ts[1:]
		}
		l.times[c.key] = ts
		if len(ts) >= c.lim.Actions {
			first = !l.tripped[c.key]
			l.tripped[c.key] = true
			return fmt.Errorf("%w: %s took %d actions within %v; acting again after %s",
				ErrRateLimited, c.what, len(ts), c.lim.Window, ts[0].Add(c.lim.Window).Format(time.RFC3339)), first
		}
	}
	for _, c := range checks {
		if c.lim.Actions >= 0 {
			l.times[c.key] = append(l.times[c.key], now)
			l.tripped[c.key] = false
		}
	}
	return nil, false
}

// errRefusedPath marks a path refused by rule 8.
var errRefusedPath = errors.New("refused path")

// underRoot finds the configured root p lies beneath and returns p relative
// to it. p must be absolute, without ".", ".." or empty components.
func underRoot(p string, roots []string) (root, rel string, err error) {
	if !strings.HasPrefix(p, "/") || hasDotDot(p) {
		return "", "", fmt.Errorf("%w: %q must be an absolute path without . or .. components", errRefusedPath, p)
	}
	for _, r := range roots {
		r = filepath.Clean(r)
		prefix := strings.TrimSuffix(r, "/") + "/"
		if strings.HasPrefix(p, prefix) && len(p) > len(prefix) {
			return r, strings.TrimSuffix(p[len(prefix):], "/"), nil
		}
	}
	return "", "", fmt.Errorf("%w: %q is outside the configured roots %q", errRefusedPath, p, roots)
}

// openBeneath is openBeneath with openat2 where this host's probe found
// it, and the walk by components where it did not.
func (r *Runner) openBeneath(root, rel string, flags int, mode uint32) (*os.File, error) {
	return openBeneathWith(r.host.Has(hostcap.Openat2), root, rel, flags, mode)
}

// openBeneath opens rel beneath the directory root without following any
// symlink in rel (rule 8). The root itself is the administrator's
// configuration and may be reached through symlinks (/var/run -> /run).
func openBeneath(root, rel string, flags int, mode uint32) (*os.File, error) {
	return openBeneathWith(true, root, rel, flags, mode)
}

// openBeneathWith is openBeneath, trying openat2 first only when openat2
// is set (a kernel that has it may still refuse it: ENOSYS or a seccomp
// filter's EPERM fall back too).
func openBeneathWith(openat2 bool, root, rel string, flags int, mode uint32) (*os.File, error) {
	if rel == "" || strings.HasPrefix(rel, "/") || hasDotDot("/"+rel) {
		return nil, fmt.Errorf("%w: %q beneath %s", errRefusedPath, rel, root)
	}
	rootfd, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", root, err)
	}
	defer unix.Close(rootfd)
	flags |= unix.O_CLOEXEC | unix.O_NOFOLLOW
	how := unix.OpenHow{
		Flags:   uint64(flags),
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS,
	}
	if flags&unix.O_CREAT != 0 {
		how.Mode = uint64(mode)
	}
	full := filepath.Join(root, rel)
	fd, err := -1, error(unix.ENOSYS)
	if openat2 {
		fd, err = unix.Openat2(rootfd, rel, &how)
	}
	if errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EPERM) { // no openat2 (or a seccomp filter refusing it)
		fd, err = openWalk(rootfd, rel, flags, mode)
	}
	switch {
	case errors.Is(err, unix.ELOOP), errors.Is(err, unix.EXDEV):
		return nil, fmt.Errorf("%w: %s: a symlink on the way (%v)", errRefusedPath, full, err)
	case err != nil:
		return nil, &os.PathError{Op: "open", Path: full, Err: err}
	}
	return os.NewFile(uintptr(fd), full), nil
}

// openWalk opens rel one component at a time with O_NOFOLLOW.
func openWalk(dirfd int, rel string, flags int, mode uint32) (int, error) {
	parts := strings.Split(rel, "/")
	cur := dirfd
	for i, c := range parts {
		if i == len(parts)-1 {
			fd, err := unix.Openat(cur, c, flags, mode)
			if cur != dirfd {
				unix.Close(cur)
			}
			return fd, err
		}
		next, err := unix.Openat(cur, c, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if cur != dirfd {
			unix.Close(cur)
		}
		if err != nil {
			if errors.Is(err, unix.ENOTDIR) {
				err = unix.ELOOP // a symlink (or a file) where a directory was expected
			}
			return -1, err
		}
		cur = next
	}
	return -1, unix.ENOENT
}
