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

	"github.com/prometheus/procfs"
	"golang.org/x/sys/unix"

	"github.com/picket-guard/picket/internal/procid"
)

// FreezeSpec stops a process (and with Tree its descendants) for For, then
// thaws it: the cgroup freezer where the tree has a cgroup of its own, else
// SIGSTOP and SIGCONT.
//
//	freeze: {pid: "{{.pid}}", tree: true, for: 2m}
type FreezeSpec struct {
	PID  string        `yaml:"pid" json:"pid"`
	Tree bool          `yaml:"tree" json:"tree,omitempty"`
	For  time.Duration `yaml:"for" json:"for"`
}

func (*FreezeSpec) Kind() string { return "freeze" }

func (s *FreezeSpec) Validate() error {
	var errs []error
	if s.PID == "" {
		errs = append(errs, errors.New("freeze: pid is required"))
	} else if !hasPlaceholder(s.PID) {
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
	o.res.Targets = intsAny(tree)
	method, dir := r.freezeMethod(top, tree)
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
	mounts, err := procfs.GetMounts()
	if err != nil || !r.live {
		return freezeSignal, ""
	}
	var v2, v1 string
	for _, m := range mounts {
		if m.FSType == "cgroup2" && v2 == "" {
			v2 = m.MountPoint
		}
		if _, ok := m.SuperOptions["freezer"]; ok && m.FSType == "cgroup" && v1 == "" {
			v1 = m.MountPoint
		}
	}
	want := map[int]bool{}
	for _, p := range tree {
		want[p.pid] = true
	}
	own := func(mount, cg, file string) string {
		if mount == "" || cg == "" || cg == "/" {
			return ""
		}
		dir := filepath.Join(mount, cg)
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
	pp, err := r.procs.fs.Proc(top.pid)
	if err != nil {
		return freezeSignal, ""
	}
	cgs, _ := pp.Cgroups()
	for _, c := range cgs {
		if c.HierarchyID == 0 {
			if dir := own(v2, c.Path, "cgroup.freeze"); dir != "" {
				return freezeCgroup2, dir
			}
		}
	}
	if dir := own(v1, r.procs.controllerPath(top.pid, "freezer"), "freezer.state"); dir != "" {
		return freezeV1, dir
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
