package act

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/picket-guard/picket/internal/procid"
	"github.com/picket-guard/picket/internal/snapshot"
)

// KillSpec signals the processes its selectors pick, the way an administrator
// would by hand: optionally warn, send Signal, wait Grace, send Then to what
// is left; with Until, re-scan and repeat (PIKT's kill_user_proc loop) until
// fewer than Until.Below match, at most MaxTries rounds within MaxTime.
//
//	kill: {user: "{{.user}}", comm: imapd, signal: TERM, grace: 5s, then: KILL, until: {below: 1}, max_tries: 5, max_time: 30s}
type KillSpec struct {
	// Selectors; every one given must match. At least one of user, comm,
	// comm_regex, cmdline, exe, cgroup, unit, pid and ppid is required.
	User       string `yaml:"user" json:"user,omitempty"`               // name or uid (effective uid, as ps shows)
	Comm       string `yaml:"comm" json:"comm,omitempty"`               // exact, as /proc/PID/comm (15 bytes at most)
	CommRegex  string `yaml:"comm_regex" json:"comm_regex,omitempty"`   // Go regexp, unanchored; no placeholders
	Cmdline    string `yaml:"cmdline" json:"cmdline,omitempty"`         // Go regexp over argv joined by spaces; no placeholders
	Exe        string `yaml:"exe" json:"exe,omitempty"`                 // exact target of /proc/PID/exe
	Cgroup     string `yaml:"cgroup" json:"cgroup,omitempty"`           // cgroup path: that cgroup and the ones below it
	CgroupGlob string `yaml:"cgroup_glob" json:"cgroup_glob,omitempty"` // a glob of cgroup paths (no placeholders)
	Unit       string `yaml:"unit" json:"unit,omitempty"`               // systemd unit: the processes of its cgroup and below
	PID        string `yaml:"pid" json:"pid,omitempty"`                 // a pid or a list ("12 13", "[12 13]", "12,13"), usually "{{.pid}}"
	PPID       string `yaml:"ppid" json:"ppid,omitempty"`               // parent pid
	// Youngest keeps only the N most recently started matches (0: all).
	Youngest int `yaml:"youngest" json:"youngest,omitempty"`
	// OlderThan keeps only processes started at least this long ago.
	OlderThan time.Duration `yaml:"older_than" json:"older_than,omitempty"`

	Signal string `yaml:"signal" json:"signal,omitempty"` // default TERM
	// Scope is what one match stands for: "process" (default), "group" (its
	// process group) or "cgroup" (every process of its cgroup). A group or
	// cgroup holding a protected process is refused whole.
	Scope string `yaml:"scope" json:"scope,omitempty"`
	// Warn: call the runner's Warn hook with the targets (the daemon tells
	// the rule's outputs), wait this long, then select again before the
	// first signal. Without a hook (picket check) there is no wait.
	Warn time.Duration `yaml:"warn" json:"warn,omitempty"`
	// Grace is how long to wait for the targets to exit after Signal before
	// sending Then (default 5s when Then is set, 1s otherwise).
	Grace time.Duration `yaml:"grace" json:"grace,omitempty"`
	Then  string        `yaml:"then" json:"then,omitempty"` // escalation signal, usually KILL
	Until *Until        `yaml:"until" json:"until,omitempty"`
	// MaxTries bounds the rounds of an Until loop (default 5); MaxTime its
	// duration (default 30s).
	MaxTries int           `yaml:"max_tries" json:"max_tries,omitempty"`
	MaxTime  time.Duration `yaml:"max_time" json:"max_time,omitempty"`
	// MaxTargets bounds what one round may signal (default 100, at most
	// 100,000). A selection larger than that is refused whole, nothing
	// signalled: it is more often a selector that matches too much (a
	// user: without a comm:) than a storm, and a storm that big is cut
	// down deliberately with youngest: N or a larger max_targets.
	MaxTargets int `yaml:"max_targets" json:"max_targets,omitempty"`
}

// Bounds of max_targets.
const (
	defaultMaxTargets = 100
	maxMaxTargets     = 100_000
)

func (s *KillSpec) maxTargets() int {
	if s.MaxTargets > 0 {
		return s.MaxTargets
	}
	return defaultMaxTargets
}

// Until is the stop condition of a kill loop: stop once fewer than Below
// processes match (Below: 1 is "until none remain", PIKT's loop).
type Until struct {
	Below int `yaml:"below" json:"below"`
}

func (*KillSpec) Kind() string { return "kill" }

func (s *KillSpec) Validate() error {
	errs := s.selectors().validate("kill")
	if s.Youngest < 0 {
		errs = append(errs, errors.New("kill: youngest must not be negative"))
	}
	if s.OlderThan < 0 || s.Warn < 0 || s.Grace < 0 || s.MaxTime < 0 || s.MaxTries < 0 {
		errs = append(errs, errors.New("kill: durations and max_tries must not be negative"))
	}
	if s.MaxTargets < 0 || s.MaxTargets > maxMaxTargets {
		errs = append(errs, fmt.Errorf("kill: max_targets %d out of 1..%d (0: the default, %d)", s.MaxTargets, maxMaxTargets, defaultMaxTargets))
	}
	for _, f := range []struct{ name, v string }{{"signal", s.Signal}, {"then", s.Then}} {
		if f.v != "" {
			if _, err := parseSignal(f.v); err != nil {
				errs = append(errs, fmt.Errorf("kill: %s: %w", f.name, err))
			}
		}
	}
	switch s.Scope {
	case "", "process", "group", "cgroup":
	default:
		errs = append(errs, fmt.Errorf("kill: scope %q: want process, group or cgroup", s.Scope))
	}
	if s.Until != nil && s.Until.Below < 1 {
		errs = append(errs, errors.New("kill: until.below must be at least 1 (1: until none remain)"))
	}
	return errors.Join(errs...)
}

func (s *KillSpec) selectors() Selectors {
	return Selectors{User: s.User, Comm: s.Comm, CommRegex: s.CommRegex, Cmdline: s.Cmdline, Exe: s.Exe,
		Cgroup: s.Cgroup, CgroupGlob: s.CgroupGlob, Unit: s.Unit, PID: s.PID, PPID: s.PPID}
}

func (s *KillSpec) signals() (sig, then unix.Signal) {
	sig, _ = parseSignal(s.Signal)
	if s.Signal == "" {
		sig = unix.SIGTERM
	}
	if s.Then != "" {
		then, _ = parseSignal(s.Then)
	}
	return sig, then
}

func (s *KillSpec) grace() time.Duration {
	switch {
	case s.Grace > 0:
		return s.Grace
	case s.Then != "":
		return 5 * time.Second
	}
	return time.Second
}

func (s *KillSpec) bounds() (tries int, max time.Duration) {
	tries, max = 1, 0
	if s.Until != nil {
		tries, max = 5, 30*time.Second
	}
	if s.MaxTries > 0 {
		tries = s.MaxTries
	}
	if s.MaxTime > 0 {
		max = s.MaxTime
	}
	return tries, max
}

// selector is a KillSpec's selectors, compiled.
type selector struct {
	uid               uint32
	byUID             bool
	comm              string
	commRe, cmdRe     *regexp.Regexp
	exe, cgroup, unit string
	cgroupGlob        string
	pids, ppids       map[int]bool
	olderThan         time.Duration
	youngest          int
	scope             string
	now               time.Time
	btime             int64
}

func (r *Runner) newSelector(s *KillSpec) (*selector, error) {
	sel, err := r.compileSelectors(s.selectors())
	if err != nil {
		return nil, err
	}
	sel.olderThan, sel.youngest, sel.scope = s.OlderThan, s.Youngest, s.Scope
	return sel, nil
}

// compileSelectors turns validated Selectors into a selector.
func (r *Runner) compileSelectors(s Selectors) (*selector, error) {
	sel := &selector{comm: s.Comm, exe: s.Exe, cgroup: strings.TrimSuffix(s.Cgroup, "/"), unit: s.Unit, cgroupGlob: s.CgroupGlob}
	if s.User != "" {
		uid, err := r.procs.lookupUID(s.User)
		if err != nil {
			return nil, err
		}
		sel.uid, sel.byUID = uid, true
	}
	if s.CommRegex != "" {
		sel.commRe = regexp.MustCompile(s.CommRegex) // compiled by Validate
	}
	if s.Cmdline != "" {
		sel.cmdRe = regexp.MustCompile(s.Cmdline)
	}
	for _, f := range []struct {
		v   string
		dst *map[int]bool
	}{{s.PID, &sel.pids}, {s.PPID, &sel.ppids}} {
		if f.v == "" {
			continue
		}
		pids, err := parsePIDs(f.v)
		if err != nil {
			return nil, err
		}
		*f.dst = map[int]bool{}
		for _, p := range pids {
			(*f.dst)[p] = true
		}
	}
	return sel, nil
}

// cheap matches what /proc/PID/stat and status show.
func (sel *selector) cheap(p proc) bool {
	return !p.gone() &&
		(!sel.byUID || p.uid == sel.uid) &&
		(sel.comm == "" || p.comm == sel.comm) &&
		(sel.commRe == nil || sel.commRe.MatchString(p.comm)) &&
		(sel.pids == nil || sel.pids[p.pid]) &&
		(sel.ppids == nil || sel.ppids[p.ppid]) &&
		(sel.olderThan == 0 || sel.now.Sub(procid.StartTime(sel.btime, p.start)) >= sel.olderThan)
}

// full adds the selectors that need another file each.
func (r *Runner) full(sel *selector, p proc) bool {
	if !sel.cheap(p) {
		return false
	}
	if sel.exe != "" && r.procs.exe(p.pid) != sel.exe {
		return false
	}
	if sel.cgroup != "" || sel.cgroupGlob != "" || sel.unit != "" {
		cg := r.procs.cgroup(p.pid)
		if cg == "" || (sel.cgroup != "" && !cgroupMatch(sel.cgroup, false, cg)) ||
			(sel.cgroupGlob != "" && !cgroupMatch(sel.cgroupGlob, true, cg)) || (sel.unit != "" && !inUnit(sel.unit, cg)) {
			return false
		}
	}
	return sel.cmdRe == nil || sel.cmdRe.MatchString(r.procs.cmdline(p.pid))
}

// refusal is a process (or scope) that matched but is protected.
type refusal struct {
	pid int
	why string
}

// selectKill returns the processes one round signals, by pid, and those that
// matched but are refused. With snap, the candidates are the processes the
// rule saw, each still the same process (same start time) now; without, a
// fresh scan of /proc.
func (r *Runner) selectKill(sel *selector, g *guard, snap *snapshot.Snapshot) ([]proc, []refusal, error) {
	sel.now = r.opts.Now()
	btime, err := r.procs.bootTime()
	if err != nil {
		return nil, nil, fmt.Errorf("boot time: %w", err)
	}
	sel.btime = btime
	var matched []proc
	if snap != nil {
		for _, sp := range snap.Processes.List {
			if sp.KernelThread || (sel.byUID && sp.UID != sel.uid) || (sel.comm != "" && sp.Comm != sel.comm) ||
				(sel.pids != nil && !sel.pids[sp.PID]) || (sel.ppids != nil && !sel.ppids[sp.PPID]) {
				continue
			}
			p, err := r.procs.read(sp.PID)
			if err != nil || (!sp.StartTime.IsZero() && !procid.StartTime(btime, p.start).Equal(sp.StartTime)) {
				continue // exited since, or its pid is another process's now
			}
			if r.full(sel, p) {
				matched = append(matched, p)
			}
		}
	} else {
		all, err := r.procs.all()
		if err != nil {
			return nil, nil, err
		}
		for _, p := range all {
			if r.full(sel, p) {
				matched = append(matched, p)
			}
		}
	}

	var ok []proc
	var refused []refusal
	for _, p := range matched {
		if why := g.refuse(p); why != "" {
			refused = append(refused, refusal{p.pid, why})
		} else {
			ok = append(ok, p)
		}
	}
	if sel.youngest > 0 && len(ok) > sel.youngest {
		sort.Slice(ok, func(i, j int) bool {
			if ok[i].start != ok[j].start {
				return ok[i].start > ok[j].start
			}
			return ok[i].pid > ok[j].pid
		})
		ok = ok[:sel.youngest]
	}
	targets := ok
	if sel.scope == "group" || sel.scope == "cgroup" {
		targets, refused, err = r.expandScope(sel.scope, ok, refused, g)
		if err != nil {
			return nil, nil, err
		}
	}
	sort.Slice(targets, func(i, j int) bool { return targets[i].pid < targets[j].pid })
	return targets, refused, nil
}

// expandScope replaces each match by every live process of its process
// group or cgroup; a scope holding a protected process is refused whole,
// and so is the root cgroup (safety rule 3).
func (r *Runner) expandScope(scope string, matches []proc, refused []refusal, g *guard) ([]proc, []refusal, error) {
	all, err := r.procs.all()
	if err != nil {
		return nil, nil, err
	}
	key := func(p proc) string {
		if scope == "group" {
			return fmt.Sprint(p.pgrp)
		}
		return r.procs.cgroup(p.pid)
	}
	members := map[string][]proc{}
	if scope == "group" {
		for _, p := range all {
			if !p.gone() {
				members[key(p)] = append(members[key(p)], p)
			}
		}
	}
	done := map[string]bool{}
	var out []proc
	for _, m := range matches {
		k := key(m)
		if done[k] {
			continue
		}
		done[k] = true
		if scope == "cgroup" {
			if k == "" || k == "/" {
				refused = append(refused, refusal{m.pid, "its cgroup is the root cgroup"})
				continue
			}
			for _, p := range all {
				if cg := r.procs.cgroup(p.pid); !p.gone() && (cg == k || strings.HasPrefix(cg, k+"/")) {
					members[k] = append(members[k], p)
				}
			}
		}
		if why := g.refuseAll(members[k]); why != "" {
			refused = append(refused, refusal{m.pid, fmt.Sprintf("its %s %s", scope, why)})
			continue
		}
		out = append(out, members[k]...)
	}
	return out, refused, nil
}

// settle is the pause between the rounds of an Until loop.
const settle = 100 * time.Millisecond

// kill is PIKT's kill_user_proc made safe: select, signal, wait, escalate,
// and with Until re-scan and repeat, bounded.
func (r *Runner) kill(ctx context.Context, o *op, s *KillSpec) {
	sel, err := r.newSelector(s)
	if err != nil {
		o.refuse(err)
		return
	}
	sig, then := s.signals()
	tries, maxTime := s.bounds()
	g := r.newGuard()
	targets, refused, err := r.selectKill(sel, g, o.req.Snapshot)
	if err != nil {
		o.refuse(err)
		return
	}
	if err := tooMany(targets, s); err != nil {
		o.refuse(err)
		return
	}
	if o.dry() {
		o.res.Targets = intsAny(targets)
		o.res.Result = fmt.Sprintf("would send %s to %d processes", signalName(sig), len(targets))
		if then != 0 {
			o.res.Result += fmt.Sprintf(", then %s after %v to those still running", signalName(then), s.grace())
		}
		if s.Until != nil {
			o.res.Result += fmt.Sprintf(", and repeat until fewer than %d match", s.Until.Below)
		}
		o.res.Result += refusedNote(refused)
		return
	}
	if len(targets) == 0 {
		o.res.Result = "nothing to kill: no process matches"
		if len(refused) > 0 {
			o.res.Result = "nothing to kill: every match is protected"
		}
		o.res.Result += refusedNote(refused)
		return
	}
	if !r.live {
		o.refuse(errFixture)
		return
	}
	if s.Warn > 0 && r.opts.Warn != nil {
		r.opts.Warn(ctx, o.req, pidList(targets))
		if err := sleep(ctx, s.Warn); err != nil {
			o.refuse(err)
			return
		}
		if targets, refused, err = r.selectKill(sel, g, nil); err != nil || len(targets) == 0 {
			o.res.Result = "nothing to kill after the warning: no process matches" + refusedNote(refused)
			return
		}
		if err := tooMany(targets, s); err != nil {
			o.refuse(err)
			return
		}
	}
	o.procs = r.identify(targets)
	if !o.intent(intsAny(targets), nil, time.Time{}) {
		return
	}

	start := time.Now()
	var st killStats
	signalled := map[int]bool{}
	var all []any
	var who []Target
	ids := o.procs
	round := 0
	remain := -1
	for {
		round++
		r.killRound(ctx, targets, sig, then, s, sel, g, &st)
		for i, t := range targets {
			if !signalled[t.pid] {
				signalled[t.pid] = true
				all = append(all, t.pid)
				who = append(who, ids[i])
			}
		}
		if s.Until == nil {
			break
		}
		// A moment for a respawning parent to show its hand, then look again
		// as PIKT's loop ran ps again.
		sleep(ctx, settle)
		if targets, refused, err = r.selectKill(sel, g, nil); err != nil {
			break
		}
		remain = len(targets)
		if remain < s.Until.Below || round >= tries || (maxTime > 0 && time.Since(start) >= maxTime) || ctx.Err() != nil {
			break
		}
		if err = tooMany(targets, s); err != nil {
			err = fmt.Errorf("round %d: %w", round+1, err)
			break
		}
		ids = r.identify(targets)
	}
	o.res.Targets = all
	o.doneProcs = who
	summary := st.summary(sig, then, s.grace(), who)
	switch {
	case err != nil && errors.Is(err, errTooMany):
		o.finish(fmt.Sprintf("stopped after %d rounds: %v; %s", round, err, summary), err, "")
	case err != nil:
		o.finish(summary, fmt.Errorf("re-scan after round %d: %w", round, err), "")
	case s.Until == nil:
		o.finish(summary+refusedNote(refused), st.err(), "")
	case remain < s.Until.Below:
		left := "none remain"
		if remain > 0 {
			left = fmt.Sprintf("%d remain, fewer than %d", remain, s.Until.Below)
		}
		o.finish(fmt.Sprintf("%s in %d rounds; %s%s", summary, round, left, refusedNote(refused)), st.err(), "")
	default:
		o.finish(fmt.Sprintf("gave up after %d rounds (%v): %d remain; %s%s", round, time.Since(start).Round(time.Millisecond), remain, summary, refusedNote(refused)),
			fmt.Errorf("%d processes still match after %d rounds", remain, round), "")
	}
}

// killStats counts what the rounds of one kill did.
type killStats struct {
	sent, escalated, exited, vanished, recycled, changed int
	errs                                                 []error
}

// summary says what the rounds did: "killed 120 imapd of nobody (TERM)".
// who are the processes selected, as identify saw them; they are named
// when they are exactly the ones the count is about.
func (st *killStats) summary(sig, then unix.Signal, grace time.Duration, who []Target) string {
	var b strings.Builder
	n := func(k int) string {
		if k == len(who) && k > 0 {
			return Describe(who)
		}
		return strconv.Itoa(k)
	}
	if st.exited == st.sent && st.sent > 0 {
		fmt.Fprintf(&b, "killed %s (%s", n(st.exited), signalName(sig))
	} else {
		fmt.Fprintf(&b, "sent %s to %s, %d exited (", signalName(sig), n(st.sent), st.exited)
	}
	if st.escalated > 0 {
		fmt.Fprintf(&b, ", %s to %d after %v", signalName(then), st.escalated, grace)
	}
	b.WriteString(")")
	if n := st.vanished + st.recycled + st.changed; n > 0 {
		fmt.Fprintf(&b, "; %d not signalled (%d exited first, %d pids recycled, %d changed since selected)", n, st.vanished, st.recycled, st.changed)
	}
	return b.String()
}

func (st *killStats) err() error {
	if len(st.errs) == 0 {
		return nil
	}
	return fmt.Errorf("%d signals failed, first: %w", len(st.errs), st.errs[0])
}

// killRound signals targets, waits the grace period, and escalates for the
// ones still running, re-checking before the escalation that it is still
// needed (with Until: that enough still match).
func (r *Runner) killRound(ctx context.Context, targets []proc, sig, then unix.Signal, s *KillSpec, sel *selector, g *guard, st *killStats) {
	var signalled []proc
	send := func(ps []proc, sig unix.Signal) (out []proc) {
		for _, p := range ps {
			res, err := r.signal(p, sig)
			switch {
			case err != nil:
				st.errs = append(st.errs, err)
			case res == sent:
				out = append(out, p)
			case res == gone:
				st.vanished++
			case res == recycled:
				st.recycled++
			case res == changed:
				st.changed++
			}
		}
		return out
	}
	signalled = send(targets, sig)
	st.sent += len(signalled)
	left := r.waitGone(ctx, signalled, s.grace())
	if then != 0 && len(left) > 0 && ctx.Err() == nil {
		still := true
		if s.Until != nil {
			if now, _, err := r.selectKill(sel, g, nil); err == nil && len(now) < s.Until.Below {
				still = false // enough exited on the first signal: no more is killed than needed
			}
		}
		if still {
			esc := send(left, then)
			st.escalated += len(esc)
			left = r.waitGone(ctx, left, 5*time.Second)
		}
	}
	st.exited += len(signalled) - len(left)
}

// waitGone polls until every p has exited (or is a zombie), d passes or ctx
// ends, and returns those still running. Deciding again before the victims
// are gone would count them twice (earlyoom waits too).
func (r *Runner) waitGone(ctx context.Context, ps []proc, d time.Duration) []proc {
	deadline := time.Now().Add(d)
	left := ps
	for {
		var still []proc
		for _, p := range left {
			if r.alive(p) {
				still = append(still, p)
			}
		}
		left = still
		if len(left) == 0 || time.Now().After(deadline) || ctx.Err() != nil {
			return left
		}
		sleep(ctx, 20*time.Millisecond)
	}
}

// errTooMany marks a selection over max_targets.
var errTooMany = errors.New("more than max_targets")

// tooMany refuses a selection larger than the spec's max_targets.
func tooMany(targets []proc, s *KillSpec) error {
	if max := s.maxTargets(); len(targets) > max {
		return fmt.Errorf("%d processes match, %w (%d): nothing signalled; narrow the selectors, keep the youngest: N, or raise max_targets",
			len(targets), errTooMany, max)
	}
	return nil
}

func pidList(ps []proc) []int {
	out := make([]int, len(ps))
	for i, p := range ps {
		out[i] = p.pid
	}
	return out
}

func refusedNote(rs []refusal) string {
	if len(rs) == 0 {
		return ""
	}
	var b strings.Builder
	fmt.Fprintf(&b, "; refused %d:", len(rs))
	for i, rf := range rs {
		if i == 5 {
			fmt.Fprintf(&b, " and %d more", len(rs)-5)
			break
		}
		fmt.Fprintf(&b, " pid %d (%s)", rf.pid, rf.why)
		if i < len(rs)-1 && i < 4 {
			b.WriteString(",")
		}
	}
	return b.String()
}
