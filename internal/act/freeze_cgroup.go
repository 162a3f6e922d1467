package act

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/picket-guard/picket/internal/cgroup"
)

// FreezeCgroupSpec freezes a whole cgroup for For, then thaws it: v2's
// cgroup.freeze (Linux 5.2), else v1's freezer.state. Every process in the
// cgroup and below it stops where it is, new ones included (the freezer
// catches what forks inside): a fork bomb in a unit stops at once, its
// memory stays, nothing is lost.
//
//	freeze_cgroup: {unit: "{{.unit}}", for: 2m}
//	freeze_cgroup: {cgroup: /system.slice/apache2.service, for: 30s}
type FreezeCgroupSpec struct {
	CgroupTarget `yaml:",inline"`
	For          time.Duration `yaml:"for" json:"for"`
}

func (*FreezeCgroupSpec) Kind() string { return "freeze_cgroup" }

func (s *FreezeCgroupSpec) Validate() error {
	errs := s.CgroupTarget.validate("freeze_cgroup")
	if s.For <= 0 || s.For > maxFor {
		errs = append(errs, fmt.Errorf("freeze_cgroup: for is required, at most %v (a freeze must end by itself)", maxFor))
	}
	return errors.Join(errs...)
}

func (r *Runner) freezeCgroup(ctx context.Context, o *op, s *FreezeCgroupSpec) {
	fsys, err := cgroup.NewFS(r.root)
	if err != nil {
		o.refuse(err)
		return
	}
	path, err := r.resolveCgroup(ctx, fsys, s.CgroupTarget, o.req.Snapshot)
	if err != nil {
		o.refuse(err)
		return
	}
	o.res.Targets = []any{path}
	method := freezeCgroup2
	d, ok := in(fsys.Unified(), path)
	if !ok || !d.has("cgroup.freeze") {
		method = freezeV1
		if m := fsys.Controller("freezer"); m == nil || m.Version != cgroup.V1 {
			ok = false
		} else if d, ok = in(m, path); ok && !d.has("freezer.state") {
			ok = false
		}
	}
	if !ok {
		o.refuse(fmt.Errorf("cgroup %s has no freezer here (no cgroup.freeze in the unified hierarchy, no v1 freezer cgroup of that path)", path))
		return
	}
	procs, err := r.members(ctx, d, r.newGuard())
	if err != nil {
		o.refuse(err)
		return
	}
	if o.dry() {
		o.res.Result = fmt.Sprintf("would freeze cgroup %s (%s, %d processes) for %v", path, method, len(procs), s.For)
		return
	}
	if !r.live {
		o.refuse(errFixture)
		return
	}
	u := &Undo{Method: method, Cgroup: d.dir()}
	for _, p := range procs {
		u.Procs = append(u.Procs, ProcRef{p.pid, p.start})
	}
	until := r.opts.Now().Add(s.For)
	if !o.intent([]any{path}, u, until) {
		return
	}
	if err := r.applyFreeze(ctx, u, nil); err != nil {
		_, terr := r.thaw(u)
		o.finish("failed; thawed again", errors.Join(err, terr), "")
		return
	}
	o.finish(fmt.Sprintf("froze cgroup %s (%s, %d processes) until %s", path, method, len(procs), until.Format("15:04:05")), nil, "")
	r.arm(o.id, until)
}
