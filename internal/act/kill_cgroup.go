package act

import (
	"context"
	"errors"
	"fmt"
	"time"

	"golang.org/x/sys/unix"

	"github.com/picket-guard/picket/internal/cgroup"
)

// KillCgroupSpec kills every process of a cgroup and the cgroups below it:
// v2's cgroup.kill (Linux 5.14), which the kernel carries out at once and
// for processes forked meanwhile too; else a bounded loop of SIGKILL to
// each process cgroup.procs lists, each checked as every kill is (safety
// rule 4), until the cgroup is empty, at most MaxTries rounds within
// MaxTime. It cannot be undone.
//
//	kill_cgroup: {unit: "{{.unit}}"}
type KillCgroupSpec struct {
	CgroupTarget `yaml:",inline"`
	MaxTries     int           `yaml:"max_tries" json:"max_tries,omitempty"` // default 10
	MaxTime      time.Duration `yaml:"max_time" json:"max_time,omitempty"`   // default 10s
}

func (*KillCgroupSpec) Kind() string { return "kill_cgroup" }

func (s *KillCgroupSpec) Validate() error {
	errs := s.CgroupTarget.validate("kill_cgroup")
	if s.MaxTries < 0 || s.MaxTime < 0 || s.MaxTime > time.Hour {
		errs = append(errs, errors.New("kill_cgroup: max_tries and max_time must not be negative, max_time at most 1h"))
	}
	return errors.Join(errs...)
}

func (r *Runner) killCgroup(ctx context.Context, o *op, s *KillCgroupSpec) {
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
	// The hierarchy to read the members from and act in: the unified one
	// where it has the cgroup, else the first v1 hierarchy that does.
	var d cgroupDir
	ok := false
	for _, m := range []*cgroup.Mount{fsys.Unified(), fsys.Named("systemd"), fsys.Controller("pids"), fsys.Controller("memory"), fsys.Controller("freezer"), fsys.Controller("cpu")} {
		if d, ok = in(m, path); ok && (m.Version == cgroup.V1 || len(mustProcs(ctx, d)) > 0 || d.has("cgroup.kill")) {
			break
		}
		ok = false
	}
	if !ok {
		o.refuse(fmt.Errorf("cgroup %s: no hierarchy has it", path))
		return
	}
	g := r.newGuard()
	procs, err := r.members(ctx, d, g)
	if err != nil {
		o.refuse(err)
		return
	}
	v2kill := d.mount.Version == cgroup.V2 && d.has("cgroup.kill")
	method := "cgroup.kill"
	if !v2kill {
		method = "SIGKILL loop"
	}
	if o.dry() {
		o.res.Result = fmt.Sprintf("would kill cgroup %s (%s, %d processes)", path, method, len(procs))
		return
	}
	if len(procs) == 0 {
		o.res.Result = fmt.Sprintf("nothing to kill: cgroup %s is empty", path)
		return
	}
	if !r.live {
		o.refuse(errFixture)
		return
	}
	o.procs = r.identify(procs)
	if !o.intent(intsAny(procs), nil, time.Time{}) {
		return
	}
	tries, maxTime := s.MaxTries, s.MaxTime
	if tries == 0 {
		tries = 10
	}
	if maxTime == 0 {
		maxTime = 10 * time.Second
	}
	start := time.Now()
	if v2kill {
		if err := d.write("cgroup.kill", "1"); err != nil {
			o.finish("failed", err, "")
			return
		}
	}
	var st killStats
	round, left := 0, procs
	for {
		round++
		if !v2kill {
			// Members again: a fork bomb forks between rounds; each process
			// is checked before its signal (rule 4) and the whole once more
			// (rule 3: a protected process moved in meanwhile stops it).
			if round > 1 {
				if left, err = r.members(ctx, d, g); err != nil {
					o.finish(fmt.Sprintf("stopped after %d rounds", round-1), err, "")
					return
				}
			}
			for _, p := range left {
				res, err := r.signal(p, unix.SIGKILL)
				switch {
				case err != nil:
					st.errs = append(st.errs, err)
				case res == sent:
					st.sent++
				}
			}
		}
		sleep(ctx, 50*time.Millisecond)
		left = nil
		for _, pid := range mustProcs(ctx, d) {
			if p, err := r.procs.read(pid); err == nil && !p.gone() {
				left = append(left, p)
			}
		}
		if len(left) == 0 || round >= tries || time.Since(start) >= maxTime || ctx.Err() != nil {
			break
		}
	}
	if len(left) > 0 {
		o.finish(fmt.Sprintf("gave up after %d rounds (%v): %d processes remain in %s", round, time.Since(start).Round(time.Millisecond), len(left), path),
			errors.Join(fmt.Errorf("%d processes remain", len(left)), st.err()), "")
		return
	}
	msg := fmt.Sprintf("killed cgroup %s (%s): %d processes", path, method, len(procs))
	if !v2kill {
		msg += fmt.Sprintf(", %d signals in %d rounds", st.sent, round)
	}
	o.finish(msg, st.err(), "")
}

func mustProcs(ctx context.Context, d cgroupDir) []int {
	pids, _ := d.mount.Procs(ctx, d.rel, maxCgroupWalk)
	return pids
}
