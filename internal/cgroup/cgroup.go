// Package cgroup reads the facts of control groups that picket's collector
// and its actions share: which hierarchies are mounted where (v2, v1, or
// the hybrid of both), the tree of one hierarchy under a root directory,
// /proc/PID/cgroup, and what a cgroup's path says of it — its systemd unit
// and its container. One reader per fact: the process the collector saw in
// a cgroup and the cgroup an action freezes, limits or kills are found by
// the same code.
//
// Everything reads beneath a root directory ("/" for the host), so a
// fixture tree in the kernel's formats stands for a host in tests. Paths
// that come from cgroup names (chosen by container runtimes and by users in
// delegated subtrees) are checked by Mount.Rel before they are joined to a
// directory: "." and ".." components are refused, never cleaned.
package cgroup

import (
	"context"
	"errors"
	"fmt"
	"path"
)

// ErrAmbiguous is returned by FindUnit when several cgroups carry the
// unit's name (a system and a user unit of one name).
var ErrAmbiguous = errors.New("more than one cgroup has that unit's name")

// ErrNotFound is returned by FindUnit when no cgroup has the unit's name.
var ErrNotFound = errors.New("no cgroup has that unit's name")

// FindUnit returns the path of the cgroup named unit in m, searched
// breadth first among at most max cgroups.
func (m *Mount) FindUnit(ctx context.Context, unit string, max int) (string, error) {
	if !IsUnitName(unit) {
		return "", fmt.Errorf("%q is not a systemd unit name", unit)
	}
	var found []string
	_, err := m.Walk(ctx, max, func(d *Dir) error {
		if path.Base(d.Path) == unit {
			found = append(found, d.Path)
		}
		return nil
	})
	switch {
	case err != nil:
		return "", err
	case len(found) == 0:
		return "", fmt.Errorf("%w: %s in %s", ErrNotFound, unit, m.Point)
	case len(found) > 1:
		return "", fmt.Errorf("%w: %s is at %q", ErrAmbiguous, unit, found)
	}
	return found[0], nil
}

// Procs lists the processes of the cgroup at rel and of every cgroup below
// it (cgroup.procs of each), at most max cgroups deep in the walk.
func (m *Mount) Procs(ctx context.Context, rel string, max int) ([]int, error) {
	var out []int
	skipped, err := m.WalkFrom(ctx, rel, max, func(d *Dir) error {
		b, err := d.Read("cgroup.procs")
		if err != nil {
			return err
		}
		pids, err := ParseProcs(b)
		out = append(out, pids...)
		return err
	})
	if err == nil && skipped > 0 {
		err = fmt.Errorf("%s has more than %d cgroups below it", m.PathOf(rel), max)
	}
	return out, err
}
