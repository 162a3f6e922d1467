package cgroup

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"testing"
)

const (
	fixtureV2     = "../../testdata/fixtures/cgroup-v2"
	fixtureHybrid = "../../testdata/fixtures/cgroup-hybrid"
)

func TestNewFSUnified(t *testing.T) {
	f, err := NewFS(fixtureV2)
	if err != nil {
		t.Fatal(err)
	}
	if f.Mode() != Unified || len(f.Mounts) != 1 {
		t.Fatalf("mode %s, mounts %+v", f.Mode(), f.Mounts)
	}
	u := f.Unified()
	if u.Point != "/sys/fs/cgroup" || u.Dir != filepath.Join(fixtureV2, "sys/fs/cgroup") || u.Root != "/" {
		t.Errorf("unified %+v", u)
	}
	if m := f.Controller("pids"); m != u {
		t.Errorf("pids in %+v", m)
	}
	if m := f.Controller("freezer"); m != nil {
		t.Errorf("a v2 host has no freezer controller (cgroup.freeze is core): %+v", m)
	}
}

func TestNewFSHybrid(t *testing.T) {
	f, err := NewFS(fixtureHybrid) // from /proc/mounts: no mountinfo in this tree
	if err != nil {
		t.Fatal(err)
	}
	if f.Mode() != Hybrid {
		t.Fatalf("mode %s", f.Mode())
	}
	var labels []string
	for _, m := range f.Mounts {
		labels = append(labels, m.Label())
	}
	sort.Strings(labels)
	want := []string{"blkio", "cpu,cpuacct", "freezer", "memory", "name=systemd", "pids", "unified"}
	if !reflect.DeepEqual(labels, want) {
		t.Errorf("hierarchies %q, want %q", labels, want)
	}
	if m := f.Controller("cpuacct"); m == nil || m.Point != "/sys/fs/cgroup/cpu,cpuacct" {
		t.Errorf("cpuacct in %+v", m)
	}
	if m := f.Named("systemd"); m == nil || m.Point != "/sys/fs/cgroup/systemd" {
		t.Errorf("name=systemd in %+v", m)
	}
	if u := f.Unified(); u == nil || len(u.Controllers) != 0 {
		t.Errorf("unified %+v: want no controllers", u)
	}
}

// TestNewFSLive reads this host's table: whatever the layout, each
// hierarchy's directory exists.
func TestNewFSLive(t *testing.T) {
	f, err := NewFS("/")
	if errors.Is(err, ErrNoCgroups) {
		t.Skip("no cgroup mounted here")
	}
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range f.Mounts {
		if _, err := os.Stat(m.Dir); err != nil {
			t.Errorf("%s: %v", m.Label(), err)
		}
	}
	t.Logf("mode %s, %d hierarchies", f.Mode(), len(f.Mounts))
}

func TestMountRel(t *testing.T) {
	m := Mount{Root: "/"}
	for p, want := range map[string]string{"/": "", "/a": "a", "/a/b.service": "a/b.service", "/a:b/c d": "a:b/c d"} {
		if got, err := m.Rel(p); err != nil || got != want {
			t.Errorf("Rel(%q) = %q, %v; want %q", p, got, err, want)
		}
		if want != "" && m.PathOf(want) != p {
			t.Errorf("PathOf(%q) = %q", want, m.PathOf(want))
		}
	}
	for _, p := range []string{"", "a", "/..", "/a/../../etc", "/a/./b", "/a//b", "/a/", "/../..", "/a\x00b"} {
		if _, err := m.Rel(p); !errors.Is(err, ErrOutside) {
			t.Errorf("Rel(%q) = %v, want ErrOutside", p, err)
		}
	}
	// A container's mount of its own part of the host's tree.
	c := Mount{Root: "/docker/abc"}
	if got, err := c.Rel("/docker/abc/x"); err != nil || got != "x" {
		t.Errorf("container Rel = %q, %v", got, err)
	}
	if _, err := c.Rel("/docker/other"); !errors.Is(err, ErrOutside) {
		t.Errorf("another container's path: %v", err)
	}
	if c.PathOf("x") != "/docker/abc/x" || c.PathOf("") != "/docker/abc" {
		t.Errorf("PathOf in a container: %q %q", c.PathOf("x"), c.PathOf(""))
	}
}

func TestUnescapeMount(t *testing.T) {
	for in, want := range map[string]string{`/a\040b`: "/a b", `/a\011b`: "/a\tb", `/a\134b`: `/a\b`, `/a\9`: `/a\9`, `/x\`: `/x\`} {
		if got := unescapeMount(in); got != want {
			t.Errorf("unescapeMount(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestWalk(t *testing.T) {
	f, err := NewFS(fixtureV2)
	if err != nil {
		t.Fatal(err)
	}
	u := f.Unified()
	var paths []string
	skipped, err := u.Walk(context.Background(), 0, func(d *Dir) error {
		paths = append(paths, d.Path)
		return nil
	})
	if err != nil || skipped != 0 {
		t.Fatal(skipped, err)
	}
	if paths[0] != "/" || len(paths) != 14 {
		t.Errorf("walk: %d %q", len(paths), paths)
	}
	// Breadth first: every top-level slice before anything deeper.
	for i, p := range paths[1:4] {
		if filepath.Dir(p) != "/" {
			t.Errorf("paths[%d] = %q is not a child of the root", i+1, p)
		}
	}
	skipped, _ = u.Walk(context.Background(), 5, func(*Dir) error { return nil })
	if skipped != 4 { // listed but not read; those below them are not even listed
		t.Errorf("bounded walk skipped %d, want 4", skipped)
	}
	procs, err := u.Procs(context.Background(), "system.slice", 100)
	sort.Ints(procs)
	if err != nil || len(procs) != 24 || procs[0] != 700 {
		t.Errorf("procs of system.slice: %v %v", procs, err)
	}
	p, err := u.FindUnit(context.Background(), "apache2.service", 100)
	if err != nil || p != "/system.slice/apache2.service" {
		t.Errorf("FindUnit: %q %v", p, err)
	}
	if _, err := u.FindUnit(context.Background(), "nosuch.service", 100); !errors.Is(err, ErrNotFound) {
		t.Errorf("FindUnit of a missing unit: %v", err)
	}
}
