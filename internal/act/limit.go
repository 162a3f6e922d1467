package act

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/picket-guard/picket/internal/cgroup"
)

// LimitSpec tightens a cgroup's limit for For, then puts the old value
// back: pids.max, so a unit stops forking (the thrashing web server's
// Apache, without firewalling the world), or v2's memory.high, so the
// kernel throttles and reclaims the cgroup instead of the host swapping.
// pids_max "current" is the cgroup's pids.current now: nothing more forks,
// nothing is killed. A limit only ever lowers: a cgroup already at or
// below the value is left alone.
//
//	limit: {unit: apache2.service, pids_max: current, for: 10m}
//	limit: {cgroup: /system.slice/php-fpm.service, memory_high: 2G, for: 5m}
type LimitSpec struct {
	CgroupTarget `yaml:",inline"`
	PidsMax      string        `yaml:"pids_max" json:"pids_max,omitempty"`       // a number, or "current"
	MemoryHigh   string        `yaml:"memory_high" json:"memory_high,omitempty"` // bytes: 536870912, 512M, 2G
	For          time.Duration `yaml:"for" json:"for"`
}

func (*LimitSpec) Kind() string { return "limit" }

func (s *LimitSpec) Validate() error {
	errs := s.CgroupTarget.validate("limit")
	if (s.PidsMax == "") == (s.MemoryHigh == "") {
		errs = append(errs, errors.New("limit: give one of pids_max and memory_high"))
	}
	if v := s.PidsMax; v != "" && !hasPlaceholder(v) && v != "current" {
		if n, err := strconv.ParseUint(v, 10, 32); err != nil || n > 1<<22 {
			errs = append(errs, fmt.Errorf("limit: pids_max %q: want a number of tasks or current", v))
		}
	}
	if v := s.MemoryHigh; v != "" && !hasPlaceholder(v) {
		if n, err := cgroup.ParseBytes(v); err != nil || n < 1<<20 {
			errs = append(errs, fmt.Errorf("limit: memory_high %q: want a byte count of at least 1M (512M, 2G)", v))
		}
	}
	if s.For <= 0 || s.For > maxFor {
		errs = append(errs, fmt.Errorf("limit: for is required, at most %v (a limit must end by itself)", maxFor))
	}
	return errors.Join(errs...)
}

func (r *Runner) limit(ctx context.Context, o *op, s *LimitSpec) {
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
	file, ctl := "pids.max", "pids"
	if s.MemoryHigh != "" {
		file, ctl = "memory.high", "memory"
	}
	m := fsys.Controller(ctl)
	d, ok := in(m, path)
	if !ok || !d.has(file) {
		why := ""
		if ctl == "memory" && m != nil && m.Version == cgroup.V1 {
			why = " (cgroup v1 has no memory.high)"
		}
		o.refuse(fmt.Errorf("cgroup %s has no %s here%s", path, file, why))
		return
	}
	if _, err := r.members(ctx, d, r.newGuard()); err != nil {
		o.refuse(err)
		return
	}
	oldText, err := d.read(file)
	if err != nil {
		o.refuse(err)
		return
	}
	old, oldMax, err := cgroup.ParseMax([]byte(oldText))
	if err != nil {
		o.refuse(fmt.Errorf("%s of %s: %w", file, path, err))
		return
	}
	var want uint64
	switch {
	case s.PidsMax == "current":
		cur, err := d.read("pids.current")
		if err == nil {
			want, err = cgroup.ParseUint([]byte(cur))
		}
		if err != nil {
			o.refuse(fmt.Errorf("pids.current of %s: %w", path, err))
			return
		}
		want = max(want, 1)
	case s.PidsMax != "":
		want, _ = strconv.ParseUint(s.PidsMax, 10, 32)
	default:
		want, _ = cgroup.ParseBytes(s.MemoryHigh)
	}
	if !oldMax && old <= want {
		o.res.Result = fmt.Sprintf("%s of %s is %s already, not above %d: left alone", file, path, oldText, want)
		return
	}
	value := strconv.FormatUint(want, 10)
	if o.dry() {
		o.res.Result = fmt.Sprintf("would lower %s of %s from %s to %s for %v", file, path, oldText, value, s.For)
		return
	}
	until := r.opts.Now().Add(s.For)
	u := &Undo{Cgroup: d.dir(), Key: file, Old: oldText, New: value}
	if !o.intent([]any{path}, u, until) {
		return
	}
	if err := d.write(file, value); err != nil {
		o.finish("failed", err, "")
		return
	}
	// The kernel may show the value rounded (memory.high in whole pages):
	// the revert compares with what it shows.
	if now, err := d.read(file); err == nil && now != value {
		u.New = now
		if jerr := r.journal.Append(Entry{ID: o.id, Time: r.opts.Now().UTC(), Phase: PhaseIntent, Type: o.res.Type, Host: o.req.Host,
			Rule: o.req.Rule, Case: o.req.Case, Targets: o.res.Targets, Undo: u, Until: until}); jerr != nil {
			r.log.Error("journal", "id", o.id, "err", jerr)
		}
	}
	o.finish(fmt.Sprintf("lowered %s of %s from %s to %s until %s", file, path, oldText, u.New, until.Format("15:04:05")), nil, "")
	r.arm(o.id, until)
}

// unlimit is a limit's revert: the old value goes back only while the file
// still holds what picket wrote; someone else's later change (systemctl
// set-property) is left alone.
func (r *Runner) unlimit(a Action) (string, error) {
	u := a.Undo
	fsys, err := cgroup.NewFS(r.root)
	if err != nil {
		return "", err
	}
	d, err := mountOf(fsys, u.Cgroup)
	if err != nil {
		return "", err
	}
	cur, err := d.read(u.Key)
	if err != nil {
		if !d.has(u.Key) {
			return fmt.Sprintf("cgroup %s is gone: nothing to restore", d.path), nil
		}
		return "", err
	}
	switch cur {
	case u.Old:
		return fmt.Sprintf("%s of %s is %s already", u.Key, d.path, u.Old), nil
	case u.New:
	default:
		return "", fmt.Errorf("%s of %s is now %s, not the %s picket set: left alone", u.Key, d.path, cur, u.New)
	}
	if err := d.write(u.Key, u.Old); err != nil {
		return "", err
	}
	return fmt.Sprintf("restored %s of %s from %s to %s", u.Key, d.path, u.New, u.Old), nil
}
