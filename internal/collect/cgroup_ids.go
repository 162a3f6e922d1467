package collect

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/picket-guard/picket/internal/cgroup"
	"github.com/picket-guard/picket/internal/sockiter"
)

// cgroupIndex turns the cgroup ids of the task iterator's records into
// the paths /proc/PID/cgroup prints. A cgroup's id is its kernfs node's,
// which is the inode number of its directory in the hierarchy's mount
// (kernfs_ino: the whole 64-bit id, generation included, so a removed
// cgroup's id is not given to another), and getdents of the parent says
// every child's inode: one walk of each hierarchy's directories indexes
// them all. The walk is redone at the next full look after one that met
// an id it did not know (a cgroup created since); such a process, and
// every process where the index cannot work, has its /proc/PID/cgroup
// read as before.
type cgroupIndex struct {
	// order is the hierarchies in the order /proc/PID/cgroup lists them
	// (the newest first: for_each_root in proc_cgroup_show), which is the
	// order cgroup.Pick must see them in to choose as it does from the
	// file; hier is what is known of each, by hierarchy id. Both nil
	// where the index is not used.
	order  []uint8
	hier   map[uint8]*cgHierarchy
	built  bool
	misses atomic.Int64 // ids not found since the index was built
}

// cgHierarchy is one hierarchy's cgroups.
type cgHierarchy struct {
	controllers []byte            // the line's second field, as the kernel prints it
	paths       map[uint64][]byte // by directory inode: the path as the line prints it
}

// maxIndexed bounds one hierarchy's index: a host with more cgroups has
// the rest read from /proc/PID/cgroup.
const maxIndexed = 1 << 16

// cgroupNSInit is the inode of the initial cgroup namespace
// (CGROUP_NS_INIT_INO, include/linux/proc_ns.h): in another, paths are
// printed relative to its root, which the mounts do not say.
const cgroupNSInit = "cgroup:[4026531835]"

// refresh (re)builds the index before a scan where it is missing or met
// ids it did not know.
func (x *cgroupIndex) refresh(c *Collector) {
	if x.built && x.misses.Load() == 0 {
		return
	}
	x.built = true
	x.misses.Store(0)
	x.order, x.hier = nil, nil
	if l, err := os.Readlink(filepath.Join(c.proc, "self", "ns", "cgroup")); err != nil || l != cgroupNSInit {
		return
	}
	b, err := os.ReadFile(filepath.Join(c.proc, "self", "cgroup"))
	if err != nil || c.cgfs == nil {
		return
	}
	hier := map[uint8]*cgHierarchy{}
	var order []uint8
	cgroup.EachLine(b, func(id uint64, controllers, _ []byte) {
		if id > 255 {
			return
		}
		order = append(order, uint8(id))
		m := mountOf(c.cgfs, id, string(controllers))
		if m == nil || m.Root != "/" {
			// Not mounted, or only part of it (a container's
			// view): its paths cannot be had from the mount.
			return
		}
		h := &cgHierarchy{controllers: append([]byte(nil), controllers...), paths: map[uint64][]byte{}}
		indexDirs(m.Dir, h.paths)
		hier[uint8(id)] = h
	})
	x.order, x.hier = order, hier
}

// mountOf is the mount of the hierarchy whose /proc/PID/cgroup lines read
// "id:controllers:".
func mountOf(fsys *cgroup.FS, id uint64, controllers string) *cgroup.Mount {
	switch {
	case id == 0 && controllers == "":
		return fsys.Unified()
	case len(controllers) > 5 && controllers[:5] == "name=":
		return fsys.Named(controllers[5:])
	}
	first := controllers
	for i := range len(controllers) {
		if controllers[i] == ',' {
			first = controllers[:i]
			break
		}
	}
	return fsys.Controller(first)
}

// indexDirs puts in paths every cgroup directory under dir (the
// hierarchy's root, "/"), breadth first, at most maxIndexed.
func indexDirs(dir string, paths map[uint64][]byte) {
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil {
		return
	}
	paths[st.Ino] = []byte("/")
	buf := make([]byte, 32<<10)
	queue := []string{""}
	for len(queue) > 0 && len(paths) < maxIndexed {
		rel := queue[0]
		queue = queue[1:]
		fd, err := unix.Open(filepath.Join(dir, rel), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			continue // removed meanwhile
		}
		for len(paths) < maxIndexed {
			n, err := unix.Getdents(fd, buf)
			if err == unix.EINTR {
				continue
			}
			if err != nil || n == 0 {
				break
			}
			eachDirentIno(buf[:n], func(ino uint64, typ byte, name []byte) {
				if typ != unix.DT_DIR || name[0] == '.' && (len(name) == 1 || len(name) == 2 && name[1] == '.') {
					return
				}
				child := string(name)
				if rel != "" {
					child = rel + "/" + child
				}
				paths[ino] = []byte("/" + child)
				queue = append(queue, child)
			})
		}
		unix.Close(fd)
	}
}

// eachDirentIno is eachDirent with each entry's inode and type.
func eachDirentIno(b []byte, fn func(ino uint64, typ byte, name []byte)) {
	for len(b) >= 19 {
		// struct linux_dirent64: ino u64, off i64, reclen u16, type u8,
		// then the name, NUL-terminated.
		reclen := int(b[16]) | int(b[17])<<8
		if reclen < 20 || reclen > len(b) {
			return
		}
		name := b[19:reclen]
		for i, ch := range name {
			if ch == 0 {
				name = name[:i]
				break
			}
		}
		if len(name) > 0 {
			fn(binary.NativeEndian.Uint64(b[0:8]), b[18], name)
		}
		b = b[reclen:]
	}
}

// pick gives pk the lines /proc/PID/cgroup would have for t, and says
// whether it could: false when a hierarchy is not indexed or t's cgroup
// in one is not known.
func (x *cgroupIndex) pick(t *sockiter.Task, pk *cgroup.Pick) bool {
	if x.order == nil || !t.Cgroups() {
		return false
	}
	for _, h := range x.order {
		hi := x.hier[h]
		if hi == nil {
			return false
		}
		if h != 0 && t.Exiting() {
			// proc_cgroup_show (kernel/cgroup/cgroup.c) prints "/" for a
			// task with PF_EXITING on every v1 hierarchy (its cgroup there
			// may be going away), and the real path on the unified one
			// (hierarchy 0). A zombie left in a v1 cgroup is shown so.
			pk.Line(uint64(h), hi.controllers, []byte("/"))
			continue
		}
		found := false
		for i := range t.NCgroups {
			if t.Hierarchy[i] != h {
				continue
			}
			path, ok := hi.paths[t.CgroupID[i]]
			if !ok {
				x.misses.Add(1)
				return false
			}
			pk.Line(uint64(h), hi.controllers, path)
			found = true
			break
		}
		if !found {
			return false
		}
	}
	return true
}
