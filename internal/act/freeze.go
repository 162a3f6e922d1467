package act

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/picket-guard/picket/internal/cgroup"
	"github.com/picket-guard/picket/internal/procid"
)

// FreezeSpec stops a process (and with Tree its descendants) for For, then
// thaws it: the cgroup freezer where the tree has a cgroup of its own, else
// SIGSTOP and SIGCONT. Instead of a pid, the selectors kill has pick the
// processes (all of them frozen with SIGSTOP; freeze_cgroup freezes a whole
// cgroup); a selection holding a protected process is refused whole.
//
//	freeze: {pid: "{{.pid}}", tree: true, for: 2m}
//	freeze: {unit: php-fpm.service, cmdline: "pool www", for: 1m}
type FreezeSpec struct {
	PID        string        `yaml:"pid" json:"pid,omitempty"`
	User       string        `yaml:"user" json:"user,omitempty"`
	Comm       string        `yaml:"comm" json:"comm,omitempty"`
	CommRegex  string        `yaml:"comm_regex" json:"comm_regex,omitempty"`
	Cmdline    string        `yaml:"cmdline" json:"cmdline,omitempty"`
	Exe        string        `yaml:"exe" json:"exe,omitempty"`
	Cgroup     string        `yaml:"cgroup" json:"cgroup,omitempty"`
	CgroupGlob string        `yaml:"cgroup_glob" json:"cgroup_glob,omitempty"`
	Unit       string        `yaml:"unit" json:"unit,omitempty"`
	Tree       bool          `yaml:"tree" json:"tree,omitempty"`
	For        time.Duration `yaml:"for" json:"for"`
}

// selectors are the spec's selectors other than a single pid.
func (s *FreezeSpec) selectors() Selectors {
	return Selectors{User: s.User, Comm: s.Comm, CommRegex: s.CommRegex, Cmdline: s.Cmdline, Exe: s.Exe,
		Cgroup: s.Cgroup, CgroupGlob: s.CgroupGlob, Unit: s.Unit}
}

func (*FreezeSpec) Kind() string { return "freeze" }

func (s *FreezeSpec) Validate() error {
	var errs []error
	sel := s.selectors()
	switch {
	case s.PID == "" && sel.empty():
		errs = append(errs, errors.New("freeze: a pid or a selector (user, comm, comm_regex, cmdline, exe, cgroup, cgroup_glob, unit) is required"))
	case s.PID == "":
		errs = append(errs, sel.validate("freeze")...)
	case !sel.empty():
		errs = append(errs, errors.New("freeze: pid and selectors exclude each other"))
	case !hasPlaceholder(s.PID):
		if pids, err := parsePIDs(s.PID); err != nil || len(pids) != 1 {
			errs = append(errs, fmt.Errorf("freeze: pid %q: want one process id", s.PID))
		}
	}
	if s.For <= 0 || s.For > maxFor {
		errs = append(errs, fmt.Errorf("freeze: for is required, at most %v (a freeze must end by itself)", maxFor))
	}
	return errors.Join(errs...)
}

// Freeze methods, in order of preference.
const (
	freezeCgroup2 = "cgroup2" // cgroup.freeze of the tree's own v2 cgroup
	freezeV1      = "freezer" // freezer.state of its own v1 freezer cgroup
	freezeSignal  = "sigstop" // SIGSTOP to each process, SIGCONT to thaw
)

// freeze stops a process (and with Tree every descendant) for a while, so
// an administrator can look at a runaway without it forking on. The cgroup
// freezer is used only where the tree is alone in its cgroup: freezing a
// shared cgroup would stop bystanders.
func (r *Runner) freeze(ctx context.Context, o *op, s *FreezeSpec) {
	if s.PID == "" {
		r.freezeSelected(ctx, o, s)
		return
	}
	pids, err := parsePIDs(s.PID)
	if err != nil || len(pids) != 1 {
		o.refuse(fmt.Errorf("pid %q: want one process id", s.PID))
		return
	}
	top, err := r.procs.read(pids[0])
	if err != nil || top.gone() {
		o.res.Result = fmt.Sprintf("nothing to freeze: pid %d is gone", pids[0])
		return
	}
	if snap := o.req.Snapshot; snap != nil {
		if btime, err := r.procs.bootTime(); err == nil {
			for _, sp := range snap.Processes.List {
				if sp.PID == top.pid && !sp.StartTime.IsZero() && !procid.StartTime(btime, top.start).Equal(sp.StartTime) {
					o.res.Result = fmt.Sprintf("nothing to freeze: pid %d is another process now", top.pid)
					return
				}
			}
		}
	}
	tree := []proc{top}
	if s.Tree {
		if tree, err = r.descendants(top); err != nil {
			o.refuse(err)
			return
		}
	}
	if why := r.newGuard().refuseAll(tree); why != "" {
		o.refuse(fmt.Errorf("the tree of pid %d %s", top.pid, why))
		return
	}
	method, dir := r.freezeMethod(top, tree)
	r.stop(ctx, o, s, tree, method, dir)
}

// freezeSelected freezes what the selectors pick (with Tree, their
// descendants too) with SIGSTOP.
func (r *Runner) freezeSelected(ctx context.Context, o *op, s *FreezeSpec) {
	sel, err := r.compileSelectors(s.selectors())
	if err != nil {
		o.refuse(err)
		return
	}
	g := r.newGuard()
	matched, refused, err := r.selectKill(sel, g, o.req.Snapshot)
	if err != nil {
		o.refuse(err)
		return
	}
	if len(refused) > 0 {
		o.refuse(fmt.Errorf("the selection holds pid %d (%s)", refused[0].pid, refused[0].why))
		return
	}
	if len(matched) == 0 {
		o.res.Result = "nothing to freeze: no process matches"
		return
	}
	tree := matched
	if s.Tree {
		seen := map[int]bool{}
		tree = nil
		for _, m := range matched {
			sub, err := r.descendants(m)
			if err != nil {
				o.refuse(err)
				return
			}
			for _, p := range sub {
				if !seen[p.pid] {
					seen[p.pid] = true
					tree = append(tree, p)
				}
			}
		}
		if why := g.refuseAll(tree); why != "" {
			o.refuse(fmt.Errorf("the selection's trees %s", why))
			return
		}
	}
	r.stop(ctx, o, s, tree, freezeSignal, "")
}

// stop freezes tree by method, journaled, until s.For is up.
func (r *Runner) stop(ctx context.Context, o *op, s *FreezeSpec, tree []proc, method, dir string) {
	o.res.Targets = intsAny(tree)
	if o.dry() {
		o.res.Result = fmt.Sprintf("would freeze %d processes (%s) for %v", len(tree), method, s.For)
		return
	}
	if !r.live {
		o.refuse(errFixture)
		return
	}
	u := &Undo{Method: method, Cgroup: dir}
	for _, p := range tree {
		u.Procs = append(u.Procs, ProcRef{p.pid, p.start})
	}
	until := r.opts.Now().Add(s.For)
	o.procs = r.identify(tree)
	if !o.intent(intsAny(tree), u, until) {
		return
	}
	if err := r.applyFreeze(ctx, u, tree); err != nil {
		_, terr := r.thaw(u)
		o.finish("failed; thawed again", errors.Join(err, terr), "")
		return
	}
	o.finish(fmt.Sprintf("froze %d processes (%s) until %s", len(tree), method, until.Format("15:04:05")), nil, "")
	r.arm(o.id, until)
}

// descendants is top and every process below it, parents first.
func (r *Runner) descendants(top proc) ([]proc, error) {
	all, err := r.procs.all()
	if err != nil {
		return nil, err
	}
	kids := map[int][]proc{}
	for _, p := range all {
		if !p.gone() {
			kids[p.ppid] = append(kids[p.ppid], p)
		}
	}
	out := []proc{top}
	for i := 0; i < len(out) && len(out) < 1<<16; i++ {
		out = append(out, kids[out[i].pid]...)
	}
	return out, nil
}

// freezeMethod picks the cgroup freezer when the tree is exactly the
// processes of a cgroup (and its children) other than the root.
func (r *Runner) freezeMethod(top proc, tree []proc) (string, string) {
	if !r.live {
		return freezeSignal, ""
	}
	fsys, err := cgroup.NewFS(r.root)
	if err != nil {
		return freezeSignal, ""
	}
	paths, err := r.procs.cgroups(top.pid)
	if err != nil {
		return freezeSignal, ""
	}
	want := map[int]bool{}
	for _, p := range tree {
		want[p.pid] = true
	}
	own := func(m *cgroup.Mount, file string) string {
		if m == nil {
			return ""
		}
		cg, ok := paths.In(m)
		if !ok {
			return ""
		}
		rel, err := m.Rel(cg)
		if err != nil || rel == "" {
			return ""
		}
		dir := filepath.Join(m.Dir, rel)
		if _, err := os.Stat(filepath.Join(dir, file)); err != nil {
			return ""
		}
		if got := cgroupProcs(dir); len(got) == len(want) {
			for _, pid := range got {
				if !want[pid] {
					return ""
				}
			}
			return dir
		}
		return ""
	}
	if dir := own(fsys.Unified(), "cgroup.freeze"); dir != "" {
		return freezeCgroup2, dir
	}
	if m := fsys.Controller("freezer"); m != nil && m.Version == cgroup.V1 {
		if dir := own(m, "freezer.state"); dir != "" {
			return freezeV1, dir
		}
	}
	return freezeSignal, ""
}

// cgroupProcs lists the pids of dir and its child cgroups.
func cgroupProcs(dir string) []int {
	var out []int
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Name() != "cgroup.procs" {
			return nil
		}
		b, _ := os.ReadFile(p)
		for _, f := range strings.Fields(string(b)) {
			if n, err := strconv.Atoi(f); err == nil {
				out = append(out, n)
			}
		}
		return nil
	})
	sort.Ints(out)
	return out
}

func (r *Runner) applyFreeze(ctx context.Context, u *Undo, tree []proc) error {
	switch u.Method {
	case freezeCgroup2:
		return writeCgroup(u.Cgroup, "cgroup.freeze", "1", "cgroup.events", "frozen 1")
	case freezeV1:
		return writeCgroup(u.Cgroup, "freezer.state", "FROZEN", "freezer.state", "FROZEN")
	}
	var errs []error
	for _, p := range tree { // parents first: a stopped parent forks no more
		if _, err := r.signal(p, unix.SIGSTOP); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// unfreeze is a freeze's revert.
func (r *Runner) unfreeze(a Action) (string, error) { return r.thaw(a.Undo) }

// thaw undoes a freeze. A process that exited or whose pid was reused is
// left alone.
func (r *Runner) thaw(u *Undo) (string, error) {
	switch u.Method {
	case freezeCgroup2:
		return "thawed " + u.Cgroup, writeCgroup(u.Cgroup, "cgroup.freeze", "0", "", "")
	case freezeV1:
		return "thawed " + u.Cgroup, writeCgroup(u.Cgroup, "freezer.state", "THAWED", "", "")
	}
	n := 0
	var errs []error
	for _, ref := range u.Procs {
		cur, err := r.procs.read(ref.PID)
		if err != nil || cur.start != ref.Start {
			continue
		}
		if res, err := r.signal(cur, unix.SIGCONT); err != nil {
			errs = append(errs, err)
		} else if res == sent {
			n++
		}
	}
	return fmt.Sprintf("sent CONT to %d processes", n), errors.Join(errs...)
}

// writeCgroup writes value to dir/file, then waits (bounded) until
// dir/check shows want: the freezer takes effect asynchronously.
func writeCgroup(dir, file, value, check, want string) error {
	f, err := openBeneath(dir, file, unix.O_WRONLY, 0)
	if errors.Is(err, os.ErrNotExist) && check == "" {
		return nil // thawing a cgroup that is gone: nothing left frozen
	}
	if err != nil {
		return err
	}
	_, err = f.WriteString(value)
	f.Close()
	if err != nil {
		return fmt.Errorf("write %s: %w", filepath.Join(dir, file), err)
	}
	for deadline := time.Now().Add(2 * time.Second); check != "" && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if b, err := os.ReadFile(filepath.Join(dir, check)); err == nil && strings.Contains(string(b), want) {
			return nil
		}
	}
	return nil
}
