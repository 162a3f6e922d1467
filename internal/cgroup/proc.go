package cgroup

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
)

// /proc/PID/cgroup has one line per hierarchy the kernel knows
// (proc_cgroup_show() in kernel/cgroup/cgroup.c):
//
//	12:pids:/system.slice/apache2.service
//	4:memory:/system.slice/apache2.service
//	1:name=systemd:/system.slice/apache2.service
//	0::/system.slice/apache2.service
//
// hierarchy id, the v1 controllers (or name=NAME) separated by commas, and
// the path relative to the reader's cgroup namespace; "0::PATH" is the
// unified hierarchy. The path is the rest of the line: it may hold colons.
// A process in a cgroup outside the reader's namespace shows "/../..": Rel
// refuses it.

// EachLine calls fn with each line's hierarchy id, controllers and path,
// slices of b. It does not allocate: the process walk calls it on its
// reused buffer for every process. A malformed line is skipped.
func EachLine(b []byte, fn func(id uint64, controllers, path []byte)) {
	for len(b) > 0 {
		var l []byte
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			l, b = b[:i], b[i+1:]
		} else {
			l, b = b, nil
		}
		i := bytes.IndexByte(l, ':')
		if i <= 0 {
			continue
		}
		j := bytes.IndexByte(l[i+1:], ':')
		if j < 0 {
			continue
		}
		id, ok := dec(l[:i])
		p := l[i+1+j+1:]
		if !ok || len(p) == 0 || p[0] != '/' {
			continue
		}
		fn(id, l[i+1:i+1+j], p)
	}
}

func dec(b []byte) (uint64, bool) {
	if len(b) == 0 || len(b) > 19 {
		return 0, false
	}
	var v uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + uint64(c-'0')
	}
	return v, true
}

// maxOthers bounds the v1 paths a Pick keeps besides its primary one.
const maxOthers = 3

// Pick chooses, over the lines of one /proc/PID/cgroup, the path that
// names the process's cgroup (Primary), and keeps the other v1 paths the
// process is in (Others), so that a process in pids:/a and memory:/b is
// counted in both. Its slices point into the buffer the lines came from;
// reset it with a zero value for the next process. It allocates nothing.
//
// The primary path is, in order: the unified hierarchy's when it is not the
// root (on a unified host always; on a hybrid one where systemd keeps its
// tree there too); the name=systemd hierarchy's (systemd's units on a
// legacy or hybrid host); the first non-root path among the v1 controllers,
// pids first, then memory, then cpu (where the limits picket watches are);
// else the root.
type Pick struct {
	unified, named, ctl []byte
	hasUnified          bool
	ctlRank             int
	others              [maxOthers][]byte
	nOthers             int
}

// ctlRank orders v1 controllers for the primary path.
func ctlRank(controllers []byte) int {
	for i, name := range [...]string{"pids", "memory", "cpu"} {
		for c := controllers; len(c) > 0; {
			var f []byte
			if k := bytes.IndexByte(c, ','); k >= 0 {
				f, c = c[:k], c[k+1:]
			} else {
				f, c = c, nil
			}
			if string(f) == name {
				return i
			}
		}
	}
	return 3
}

// Line takes one line of the file (see EachLine).
func (p *Pick) Line(id uint64, controllers, path []byte) {
	root := len(path) == 1
	switch {
	case id == 0 && len(controllers) == 0:
		p.unified, p.hasUnified = path, true
	case bytes.HasPrefix(controllers, []byte("name=")):
		if string(controllers) == "name=systemd" {
			p.named = path
		}
	case !root:
		r := ctlRank(controllers)
		if p.ctl == nil || r < p.ctlRank {
			if p.ctl != nil {
				p.addOther(p.ctl)
			}
			p.ctl, p.ctlRank = path, r
		} else {
			p.addOther(path)
		}
	}
}

func (p *Pick) addOther(path []byte) {
	for _, o := range p.others[:p.nOthers] {
		if bytes.Equal(o, path) {
			return
		}
	}
	if p.nOthers < maxOthers {
		p.others[p.nOthers] = path
		p.nOthers++
	}
}

// Primary is the path that names the process's cgroup; "/" when nothing
// was read.
func (p *Pick) Primary() []byte {
	switch {
	case p.hasUnified && len(p.unified) > 1:
		return p.unified
	case len(p.named) > 1:
		return p.named
	case p.ctl != nil:
		return p.ctl
	case p.hasUnified:
		return p.unified
	case p.named != nil:
		return p.named
	}
	return []byte("/")
}

// Others are the v1 controller paths other than Primary's, each once.
func (p *Pick) Others() [][]byte {
	var out [][]byte
	p.EachOther(func(path []byte) { out = append(out, path) })
	return out
}

// EachOther is Others without the slice: fn gets each path once.
func (p *Pick) EachOther(fn func(path []byte)) {
	prim := p.Primary()
	if p.ctl != nil && !bytes.Equal(p.ctl, prim) {
		fn(p.ctl)
	}
	for _, o := range p.others[:p.nOthers] {
		if !bytes.Equal(o, prim) && (p.ctl == nil || !bytes.Equal(o, p.ctl)) {
			fn(o)
		}
	}
}

// Paths is one process's place in every hierarchy, as /proc/PID/cgroup
// says it.
type Paths struct {
	// Primary names the process's cgroup (see Pick).
	Primary string
	// Unified is the v2 path ("" when the file has no "0::" line).
	Unified string
	// Controllers maps each v1 controller (and name=NAME) to its path.
	Controllers map[string]string
}

// ParseProcCgroup parses the text of /proc/PID/cgroup with the walk's rule.
func ParseProcCgroup(b []byte) Paths {
	var pk Pick
	ps := Paths{Controllers: map[string]string{}}
	EachLine(b, func(id uint64, controllers, path []byte) {
		pk.Line(id, controllers, path)
		if id == 0 && len(controllers) == 0 {
			ps.Unified = string(path)
			return
		}
		for c := range bytes.SplitSeq(controllers, []byte(",")) {
			ps.Controllers[string(c)] = string(path)
		}
	})
	ps.Primary = string(pk.Primary())
	return ps
}

// In returns the process's path in the hierarchy m.
func (ps Paths) In(m *Mount) (string, bool) {
	if m.Version == V2 {
		return ps.Unified, ps.Unified != ""
	}
	key := "name=" + m.Name
	if m.Name == "" && len(m.Controllers) > 0 {
		key = m.Controllers[0]
	}
	p, ok := ps.Controllers[key]
	return p, ok
}

// Proc reads /proc/PID/cgroup beneath the FS's root.
func (f *FS) Proc(pid int) (Paths, error) {
	p := filepath.Join(f.proc, strconv.Itoa(pid), "cgroup")
	b, err := os.ReadFile(p)
	if err != nil {
		return Paths{}, fmt.Errorf("read %s: %w", p, err)
	}
	return ParseProcCgroup(b), nil
}

// ProcFile reads /proc/PID/cgroup beneath root without the mount table,
// for a caller that only needs the paths (a selector matching cgroups).
func ProcFile(root string, pid int) (Paths, error) {
	return (&FS{proc: filepath.Join(root, "proc")}).Proc(pid)
}
