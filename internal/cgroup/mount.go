package cgroup

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/prometheus/procfs"
)

// Version is a hierarchy's cgroup version.
type Version int

// The two cgroup versions (Documentation/admin-guide/cgroup-v1/ and
// cgroup-v2.rst).
const (
	V1 Version = 1
	V2 Version = 2
)

// Mode is how a host lays its hierarchies out, in systemd's words
// (systemd.io/CGROUP_DELEGATION: "unified", "legacy", "hybrid").
type Mode string

// The layouts.
const (
	// Unified: one cgroup2 hierarchy with the controllers (today's
	// default).
	Unified Mode = "unified"
	// Hybrid: v1 controller hierarchies, plus a cgroup2 mount (usually
	// /sys/fs/cgroup/unified) holding few or no controllers.
	Hybrid Mode = "hybrid"
	// Legacy: v1 hierarchies only.
	Legacy Mode = "legacy"
	// None: no cgroup mount is visible.
	None Mode = "none"
)

// Mount is one mounted hierarchy.
type Mount struct {
	Version Version
	// Point is where it is mounted, as the mount table says
	// (/sys/fs/cgroup/pids); Dir is the same under the FS's root, where
	// its files are read.
	Point, Dir string
	// Root is the cgroup the mount shows at Point (mountinfo's fourth
	// field): "/" normally, a container's own cgroup when a container
	// without a cgroup namespace mounts its part of the host's tree.
	Root string
	// Controllers: a v1 hierarchy's from its mount options (pids;
	// cpu,cpuacct), a v2 hierarchy's from its root's cgroup.controllers.
	Controllers []string
	// Name is a v1 named hierarchy's name= option (systemd), "" otherwise.
	Name string
}

// Has reports whether the hierarchy carries controller.
func (m *Mount) Has(controller string) bool {
	for _, c := range m.Controllers {
		if c == controller {
			return true
		}
	}
	return false
}

// v1Controllers are the v1 controllers the kernel knows (what
// /proc/cgroups lists); a v1 mount's options name its controllers among
// its other options (rw, relatime, clone_children…).
var v1Controllers = map[string]bool{
	"cpu": true, "cpuacct": true, "cpuset": true, "memory": true, "devices": true, "freezer": true,
	"net_cls": true, "net_prio": true, "blkio": true, "perf_event": true, "hugetlb": true, "pids": true,
	"rdma": true, "misc": true,
}

// FS is the cgroup hierarchies mounted on a root directory, found in
// ROOT/proc/self/mountinfo (or ROOT/proc/mounts when that is missing).
// Every path it gives is beneath ROOT, so a fixture tree stands for a host.
type FS struct {
	root   string
	proc   string
	Mounts []Mount
}

// ErrNoCgroups is returned by NewFS when no cgroup hierarchy is mounted.
var ErrNoCgroups = errors.New("no cgroup hierarchy mounted")

// NewFS reads the mount table of root ("/" for the host).
func NewFS(root string) (*FS, error) {
	if root == "" {
		root = "/"
	}
	proc := filepath.Join(root, "proc")
	f := &FS{root: root, proc: proc}
	pfs, err := procfs.NewFS(proc)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", proc, err)
	}
	infos, err := pfs.GetMounts()
	switch {
	case err == nil:
		for _, mi := range infos {
			f.add(mi.FSType, unescapeMount(mi.MountPoint), mi.Root, mi.SuperOptions)
		}
	case errors.Is(err, fs.ErrNotExist):
		// Without mountinfo (a fixture tree of /proc/mounts only, or a
		// kernel before 2.6.26) the mounts table still names the
		// hierarchies; it has no root field, so "/" is assumed.
		b, err := os.ReadFile(filepath.Join(proc, "mounts"))
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil, ErrNoCgroups
			}
			return nil, fmt.Errorf("read %s: %w", filepath.Join(proc, "mounts"), err)
		}
		for _, l := range bytes.Split(b, []byte("\n")) {
			fl := strings.Fields(string(l))
			if len(fl) < 4 {
				continue
			}
			opts := map[string]string{}
			for _, o := range strings.Split(fl[3], ",") {
				k, v, _ := strings.Cut(o, "=")
				opts[k] = v
			}
			f.add(fl[2], unescapeMount(fl[1]), "/", opts)
		}
	default:
		return nil, fmt.Errorf("read %s: %w", filepath.Join(proc, "self", "mountinfo"), err)
	}
	if len(f.Mounts) == 0 {
		return nil, ErrNoCgroups
	}
	sort.SliceStable(f.Mounts, func(i, j int) bool { return f.Mounts[i].Version > f.Mounts[j].Version })
	return f, nil
}

// add records a cgroup mount; the same hierarchy mounted twice (bind
// mounts, containers) is kept once, at its first mount point.
func (f *FS) add(fstype, point, root string, opts map[string]string) {
	var m Mount
	switch fstype {
	case "cgroup2":
		m = Mount{Version: V2}
		m.Dir = filepath.Join(f.root, point)
		if b, err := os.ReadFile(filepath.Join(m.Dir, "cgroup.controllers")); err == nil {
			m.Controllers = strings.Fields(string(b))
		}
	case "cgroup":
		m = Mount{Version: V1}
		m.Dir = filepath.Join(f.root, point)
		for o, v := range opts {
			if v1Controllers[o] {
				m.Controllers = append(m.Controllers, o)
			}
			if o == "name" {
				m.Name = v
			}
		}
		sort.Strings(m.Controllers)
	default:
		return
	}
	m.Point, m.Root = point, path.Clean("/"+root)
	for _, o := range f.Mounts {
		if o.Version == m.Version && o.Name == m.Name && strings.Join(o.Controllers, ",") == strings.Join(m.Controllers, ",") &&
			(m.Version == V1 || o.Point == m.Point) {
			return
		}
	}
	f.Mounts = append(f.Mounts, m)
}

// unescapeMount undoes the octal escapes the kernel writes for space, tab,
// newline and backslash in mount points (show_mountinfo → seq_path).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) && isOctal(s[i+1:i+4]) {
			b.WriteByte((s[i+1]-'0')<<6 | (s[i+2]-'0')<<3 | (s[i+3] - '0'))
			i += 3
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isOctal(s string) bool {
	if len(s) != 3 {
		return false
	}
	for i := 0; i < 3; i++ {
		if s[i] < '0' || s[i] > '7' {
			return false
		}
	}
	return s[0] <= '3'
}

// Mode says how the host's hierarchies are laid out.
func (f *FS) Mode() Mode {
	v2, v1 := false, false
	for _, m := range f.Mounts {
		switch {
		case m.Version == V2:
			v2 = true
		case len(m.Controllers) > 0:
			v1 = true
		}
	}
	switch {
	case v2 && v1:
		return Hybrid
	case v2:
		return Unified
	case v1:
		return Legacy
	}
	return None
}

// Unified is the cgroup2 hierarchy, nil when none is mounted.
func (f *FS) Unified() *Mount {
	for i := range f.Mounts {
		if f.Mounts[i].Version == V2 {
			return &f.Mounts[i]
		}
	}
	return nil
}

// Controller is the hierarchy that carries controller: a v1 hierarchy
// mounted with it, else the v2 one when it has it enabled; nil when
// neither does.
func (f *FS) Controller(controller string) *Mount {
	for i := range f.Mounts {
		if m := &f.Mounts[i]; m.Version == V1 && m.Has(controller) {
			return m
		}
	}
	if u := f.Unified(); u != nil && u.Has(controller) {
		return u
	}
	return nil
}

// Named is the v1 named hierarchy name (systemd), nil when none.
func (f *FS) Named(name string) *Mount {
	for i := range f.Mounts {
		if m := &f.Mounts[i]; m.Version == V1 && m.Name == name {
			return m
		}
	}
	return nil
}

// ErrOutside is returned for a cgroup path that would leave the hierarchy,
// or that this mount does not show.
var ErrOutside = errors.New("not a cgroup path beneath the mount")

// Rel turns a cgroup path, as /proc/PID/cgroup and the snapshot print it,
// into a path relative to m.Dir ("" is the hierarchy's root). A path with
// ".", ".." or empty components is refused, never cleaned: cgroups are
// named by whoever creates them (a container runtime, a user in a
// delegated subtree), and "../.." is an attack. So is a path the mount
// does not show (another container's, when the mount's root is not "/").
func (m *Mount) Rel(p string) (string, error) {
	if !strings.HasPrefix(p, "/") || strings.ContainsRune(p, 0) {
		return "", fmt.Errorf("%w: %q is not absolute", ErrOutside, p)
	}
	if p != "/" {
		for _, c := range strings.Split(p[1:], "/") {
			if c == "" || c == "." || c == ".." {
				return "", fmt.Errorf("%w: %q has a %q component", ErrOutside, p, c)
			}
		}
	}
	if m.Root != "/" {
		if p != m.Root && !strings.HasPrefix(p, m.Root+"/") {
			return "", fmt.Errorf("%w: %q is outside %s, the part of the tree mounted at %s", ErrOutside, p, m.Root, m.Point)
		}
		p = "/" + strings.TrimPrefix(strings.TrimPrefix(p, m.Root), "/")
	}
	return strings.TrimPrefix(p, "/"), nil
}

// PathOf is the cgroup path of rel, a directory relative to m.Dir: the
// inverse of Rel.
func (m *Mount) PathOf(rel string) string {
	if rel == "" {
		return m.Root
	}
	if m.Root == "/" {
		return "/" + rel
	}
	return m.Root + "/" + rel
}

// Label names the hierarchy for people and the snapshot: "unified" for v2,
// the controllers for v1 ("cpu,cpuacct"), or "name=systemd".
func (m *Mount) Label() string {
	switch {
	case m.Version == V2:
		return "unified"
	case m.Name != "":
		return "name=" + m.Name
	}
	return strings.Join(m.Controllers, ",")
}
