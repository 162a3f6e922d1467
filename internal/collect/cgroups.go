package collect

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"sort"

	"github.com/picket-guard/picket/internal/cgroup"
	"github.com/picket-guard/picket/internal/snapshot"
)

// cgroupSource reads the control groups: which hierarchies are mounted
// (internal/cgroup, the reader the actions use too), then every cgroup of
// each hierarchy a controller below reads, merged by path. On a unified
// host that is one walk of /sys/fs/cgroup; on a hybrid or legacy one, one
// walk of each of the pids, memory, cpu and freezer hierarchies and of the
// unified mount (pressure and cgroup.freeze live there). The per-process
// side (each process's cgroup path) is read by the process walk
// (process.go) and joined in aggregate.go.
//
// A look's cost grows with the number of cgroups (a Kubernetes node has
// thousands): Options.MaxCgroups bounds it, breadth first, so that the
// slices and services near the root are always read. A light look (the
// daemon's every-second guard) reads fewer files, and only of the cgroups
// the last full look found with a limit set or frozen (CgroupLayout.Partial):
// those are where forks and charges are refused; a cgroup created since is
// seen on the next full look. bench_cgroup_test.go's BenchmarkCgroups
// measures the cost per cgroup.
type cgroupSource struct{}

func (cgroupSource) name() snapshot.Source { return snapshot.SourceCgroups }

// cgroupController reads one controller's files of one cgroup. Each is a
// file of its own (cgroup_pids.go, cgroup_memory.go…); read returns
// fs.ErrNotExist-wrapping errors for files this cgroup does not have,
// which are not errors. A light look (full false) reads only what limits
// and refusals need: the current values, the limits and the event counts.
type cgroupController interface {
	// controller is the v1 controller whose hierarchy holds its files;
	// "" for files of the unified hierarchy only (pressure, and the
	// freezer's cgroup.freeze, which is core in v2).
	controller() string
	read(d *cgroup.Dir, v cgroup.Version, cg *snapshot.Cgroup, full bool) error
}

var cgroupControllers = []cgroupController{
	pidsController{},
	memoryController{},
	cpuController{},
	pressureController{},
	freezerController{},
}

// cgroupErrLimit bounds the errors one look reports: a tree of thousands of
// unreadable cgroups says it in a few lines.
const cgroupErrLimit = 5

func (s cgroupSource) update(ctx context.Context, c *Collector, snap *snapshot.Snapshot) error {
	return s.updateDepth(ctx, c, snap, Full)
}

func (cgroupSource) updateDepth(ctx context.Context, c *Collector, snap *snapshot.Snapshot, depth Depth) error {
	full := depth == Full
	c.cgroupsMounted = false
	fsys, err := cgroup.NewFS(c.root)
	if errors.Is(err, cgroup.ErrNoCgroups) {
		return ErrNoData
	}
	if err != nil {
		return err
	}
	c.cgroupsMounted, c.cgfs = true, fsys
	layout := &snapshot.CgroupLayout{Mode: string(fsys.Mode())}
	snap.CgroupLayout = layout
	if u := fsys.Unified(); u != nil {
		layout.Unified, layout.UnifiedControllers = u.Point, u.Controllers
	}
	idx := map[string]int{}
	watch := map[string][]string{} // by hierarchy: the cgroups a light look re-reads
	var errs []error
	nerr := 0
	fail := func(err error) {
		if nerr++; nerr <= cgroupErrLimit {
			errs = append(errs, err)
		}
	}
	for i := range fsys.Mounts {
		m := &fsys.Mounts[i]
		if m.Version == cgroup.V1 {
			if layout.V1 == nil {
				layout.V1 = map[string]string{}
			}
			layout.V1[m.Label()] = m.Point
		}
		var ctls []cgroupController
		for _, ctl := range cgroupControllers {
			if m.Version == cgroup.V2 || (ctl.controller() != "" && m.Has(ctl.controller())) {
				ctls = append(ctls, ctl)
			}
		}
		if len(ctls) == 0 {
			continue // name=systemd, blkio, devices…: nothing picket reads
		}
		label := m.Label()
		visit := func(d *cgroup.Dir) error {
			j, ok := idx[d.Path]
			if !ok {
				if len(snap.Cgroups) >= c.opts.MaxCgroups {
					layout.Skipped++
					return nil
				}
				j = len(snap.Cgroups)
				idx[d.Path] = j
				snap.Cgroups = append(snap.Cgroups, newCgroup(d.Path))
			}
			cg := &snap.Cgroups[j]
			cg.Hierarchies = append(cg.Hierarchies, label)
			for _, ctl := range ctls {
				if err := ctl.read(d, m.Version, cg, full); err != nil && !errors.Is(err, fs.ErrNotExist) {
					fail(fmt.Errorf("%s: %w", m.Point, err))
				}
			}
			if full && (cg.Limited() || cg.Frozen) {
				watch[label] = append(watch[label], d.Rel)
			}
			return nil
		}
		var err error
		if rels, ok := c.cgWatch[label]; ok && !full {
			layout.Partial = true
			err = m.Visit(ctx, rels, visit)
		} else {
			if _, ok := watch[label]; !ok {
				watch[label] = []string{} // a light look reads none of this hierarchy's cgroups
			}
			var skipped int
			skipped, err = m.Walk(ctx, c.opts.MaxCgroups, visit)
			layout.Skipped += skipped
		}
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			fail(err)
		}
	}
	layout.Read = len(snap.Cgroups)
	if full {
		c.cgWatch = watch
	}
	if nerr > cgroupErrLimit {
		errs = append(errs, fmt.Errorf("and %d more errors", nerr-cgroupErrLimit))
	}
	// Breadth first over the merged tree: by depth, then by path.
	sort.SliceStable(snap.Cgroups, func(i, j int) bool {
		a, b := snap.Cgroups[i].Path, snap.Cgroups[j].Path
		if da, db := pathDepth(a), pathDepth(b); da != db {
			return da < db
		}
		return a < b
	})
	return errors.Join(errs...)
}

func newCgroup(path string) snapshot.Cgroup {
	cg := snapshot.Cgroup{Path: path, Unit: cgroup.Unit(path), UserUnitOf: cgroup.UserManager(path)}
	if c, ok := cgroup.ContainerOf(path); ok {
		cg.Container = &snapshot.Container{Runtime: c.Runtime, ID: c.ID, Pod: c.Pod}
	}
	return cg
}

// pathDepth is the number of components of a cgroup path ("/" is 0).
func pathDepth(p string) int {
	if p == "/" {
		return 0
	}
	n := 0
	for i := 0; i < len(p); i++ {
		if p[i] == '/' {
			n++
		}
	}
	return n
}

// readUint reads a single-number file into *dst.
func readUint(d *cgroup.Dir, name string, dst **uint64) error {
	b, err := d.Read(name)
	if err != nil {
		return err
	}
	v, err := cgroup.ParseUint(b)
	if err != nil {
		return fmt.Errorf("%s/%s: %w", d.Rel, name, err)
	}
	*dst = &v
	return nil
}

// readMax reads a limit file: "max" (or v1's PAGE_COUNTER_MAX) leaves *dst
// nil.
func readMax(d *cgroup.Dir, name string, dst **uint64) error {
	b, err := d.Read(name)
	if err != nil {
		return err
	}
	v, unlimited, err := cgroup.ParseMax(b)
	if err != nil {
		return fmt.Errorf("%s/%s: %w", d.Rel, name, err)
	}
	if !unlimited {
		*dst = &v
	}
	return nil
}

// firstErr keeps the first error that is not a missing file, and whether
// any file was there.
type firstErr struct {
	err   error
	found bool
}

func (f *firstErr) add(err error) {
	switch {
	case err == nil:
		f.found = true
	case errors.Is(err, fs.ErrNotExist):
	case f.err == nil:
		f.found = true
		f.err = err
	}
}
