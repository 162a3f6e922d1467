package act

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/picket-guard/picket/internal/cgroup"
	"github.com/picket-guard/picket/internal/snapshot"
)

// The cgroup actions (freeze_cgroup, limit, kill_cgroup) name their cgroup
// by path or by systemd unit, and find it through internal/cgroup, the
// reader the collector uses. Every file is opened beneath its hierarchy's
// mount point (safety rule 8): cgroup paths come from names that runtimes
// and users choose, and internal/cgroup refuses "." and ".." in them. The
// root cgroup is never a target, and a cgroup holding a protected process
// is refused whole (safety rule 3).

// maxCgroupWalk bounds the cgroups one action looks through (a unit's
// name, the processes of a subtree).
const maxCgroupWalk = 20000

// CgroupTarget names a cgroup: its path, or the systemd unit whose cgroup
// it is (found in the rule's snapshot, else in the hierarchy).
type CgroupTarget struct {
	Cgroup string `yaml:"cgroup" json:"cgroup,omitempty"`
	Unit   string `yaml:"unit" json:"unit,omitempty"`
}

func (t CgroupTarget) validate(kind string) []error {
	var errs []error
	switch {
	case t.Cgroup == "" && t.Unit == "":
		errs = append(errs, fmt.Errorf("%s: cgroup or unit is required", kind))
	case t.Cgroup != "" && t.Unit != "":
		errs = append(errs, fmt.Errorf("%s: give cgroup or unit, not both", kind))
	}
	if c := t.Cgroup; c != "" && !hasPlaceholder(c) {
		if _, err := (&cgroup.Mount{Root: "/"}).Rel(c); err != nil || c == "/" {
			errs = append(errs, fmt.Errorf("%s: cgroup %q: want the absolute path of a cgroup other than the root, without . or .. components", kind, c))
		}
	}
	if u := t.Unit; u != "" && !hasPlaceholder(u) && !cgroup.IsUnitName(u) {
		errs = append(errs, fmt.Errorf("%s: unit %q is not a systemd unit name", kind, u))
	}
	return errs
}

// cgroupDir is one cgroup in one hierarchy, ready to be acted on.
type cgroupDir struct {
	path  string // as /proc/PID/cgroup prints it
	mount *cgroup.Mount
	rel   string // beneath mount.Dir
}

func (d cgroupDir) dir() string { return filepath.Join(d.mount.Dir, d.rel) }

// has reports whether the cgroup has the interface file name.
func (d cgroupDir) has(name string) bool {
	f, err := openBeneath(d.mount.Dir, d.rel+"/"+name, unix.O_RDONLY, 0)
	if err != nil {
		return false
	}
	f.Close()
	return true
}

func (d cgroupDir) read(name string) (string, error) {
	f, err := openBeneath(d.mount.Dir, d.rel+"/"+name, unix.O_RDONLY, 0)
	if err != nil {
		return "", err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, 64<<10))
	if err != nil {
		return "", fmt.Errorf("read %s: %w", filepath.Join(d.dir(), name), err)
	}
	return strings.TrimSpace(string(b)), nil
}

// write writes value to the cgroup's file name. O_TRUNC matters for a
// fixture tree's plain files; cgroupfs ignores it.
func (d cgroupDir) write(name, value string) error {
	f, err := openBeneath(d.mount.Dir, d.rel+"/"+name, unix.O_WRONLY|unix.O_TRUNC, 0)
	if err != nil {
		return err
	}
	_, werr := f.WriteString(value)
	cerr := f.Close()
	if err := errors.Join(werr, cerr); err != nil {
		return fmt.Errorf("write %q to %s: %w", value, filepath.Join(d.dir(), name), err)
	}
	return nil
}

// resolveCgroup finds the target's path: the cgroup itself, or the one
// unit names (in the rule's snapshot if it has it once, else by walking
// the unified or systemd hierarchy).
func (r *Runner) resolveCgroup(ctx context.Context, fsys *cgroup.FS, t CgroupTarget, snap *snapshot.Snapshot) (string, error) {
	if t.Cgroup != "" {
		if t.Cgroup == "/" {
			return "", errors.New("the root cgroup is never a target")
		}
		return strings.TrimSuffix(t.Cgroup, "/"), nil
	}
	if snap != nil {
		var found []string
		for _, c := range snap.Cgroups {
			if c.Unit == t.Unit && filepath.Base(c.Path) == t.Unit {
				found = append(found, c.Path)
			}
		}
		if len(found) == 1 {
			return found[0], nil
		}
	}
	var errs []error
	for _, m := range []*cgroup.Mount{fsys.Unified(), fsys.Named("systemd"), fsys.Controller("pids"), fsys.Controller("memory")} {
		if m == nil {
			continue
		}
		p, err := m.FindUnit(ctx, t.Unit, maxCgroupWalk)
		if err == nil {
			return p, nil
		}
		if errors.Is(err, cgroup.ErrAmbiguous) {
			return "", fmt.Errorf("unit %s: %w: name the cgroup instead", t.Unit, err)
		}
		errs = append(errs, err)
	}
	return "", fmt.Errorf("unit %s: no cgroup of that name: %w", t.Unit, errors.Join(errs...))
}

// in returns the cgroup path in mount m, if that hierarchy has it.
func in(m *cgroup.Mount, path string) (cgroupDir, bool) {
	if m == nil {
		return cgroupDir{}, false
	}
	rel, err := m.Rel(path)
	if err != nil || rel == "" {
		return cgroupDir{}, false
	}
	if st, err := os.Lstat(filepath.Join(m.Dir, rel)); err != nil || !st.IsDir() {
		return cgroupDir{}, false
	}
	return cgroupDir{path: path, mount: m, rel: rel}, true
}

// members reads every process of the cgroup and below it (in the hierarchy
// acted on) and applies safety rule 3: one refused process refuses all.
func (r *Runner) members(ctx context.Context, d cgroupDir, g *guard) ([]proc, error) {
	pids, err := d.mount.Procs(ctx, d.rel, maxCgroupWalk)
	if err != nil {
		return nil, err
	}
	var out []proc
	for _, pid := range pids {
		p, err := r.procs.read(pid)
		if err != nil || p.gone() {
			continue
		}
		out = append(out, p)
	}
	if why := g.refuseAll(out); why != "" {
		return nil, fmt.Errorf("cgroup %s %s", d.path, why)
	}
	return out, nil
}

// mountOf finds the hierarchy whose directory holds dir (a journaled
// Undo.Cgroup), for a revert after a restart.
func mountOf(fsys *cgroup.FS, dir string) (cgroupDir, error) {
	for i := range fsys.Mounts {
		m := &fsys.Mounts[i]
		if rel, ok := strings.CutPrefix(dir, m.Dir+"/"); ok && rel != "" {
			if _, err := m.Rel("/" + rel); err != nil {
				return cgroupDir{}, err
			}
			return cgroupDir{path: m.PathOf(rel), mount: m, rel: rel}, nil
		}
	}
	return cgroupDir{}, fmt.Errorf("%s is in no cgroup hierarchy mounted now", dir)
}
