package cgroup

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// Dir is one cgroup directory open for reading its files. Read returns a
// slice of a buffer the walk reuses: valid until the next Read.
type Dir struct {
	// Path is the cgroup's path as /proc/PID/cgroup prints it.
	Path string
	// Rel is the directory relative to the mount's Dir.
	Rel string
	fd  int
	buf []byte
}

// Read reads the whole of the small file name. A file that does not exist
// (a controller not enabled here, an older kernel) is fs.ErrNotExist.
func (d *Dir) Read(name string) ([]byte, error) {
	fd, err := unix.Openat(d.fd, name, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
	if err != nil {
		return nil, &pathError{d, name, err}
	}
	defer unix.Close(fd)
	n := 0
	for {
		if n == len(d.buf) {
			d.buf = append(d.buf, make([]byte, len(d.buf))...)
		}
		m, err := unix.Read(fd, d.buf[n:])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, &pathError{d, name, err}
		}
		if m == 0 {
			return d.buf[:n], nil
		}
		n += m
		// Interface files are seq_files that hand their whole text to the
		// first read with room for it: a short read ending in a newline is
		// all of it, and the read that would return 0 is saved (one
		// syscall of four per file).
		if n < len(d.buf) && d.buf[n-1] == '\n' {
			return d.buf[:n], nil
		}
	}
}

type pathError struct {
	d    *Dir
	name string
	err  error
}

func (e *pathError) Error() string {
	return fmt.Sprintf("read %s: %v", filepath.Join(e.d.Rel, e.name), e.err)
}

func (e *pathError) Unwrap() error { return e.err }

// Walk visits the cgroups of m breadth first, the root first, at most max
// of them (0: no bound), and calls fn with each. Breadth first, so that
// when the bound cuts a tree of thousands (a Kubernetes node), the slices
// and services near the root are the ones read. It returns how many
// cgroups were listed but left out (those below them are not even listed:
// a lower bound). A cgroup removed during the walk is skipped.
func (m *Mount) Walk(ctx context.Context, max int, fn func(d *Dir) error) (skipped int, err error) {
	return m.WalkFrom(ctx, "", max, fn)
}

// WalkFrom is Walk from the cgroup at rel (from Rel) down.
func (m *Mount) WalkFrom(ctx context.Context, rel string, max int, fn func(d *Dir) error) (skipped int, err error) {
	top := rel
	d := Dir{buf: make([]byte, 8<<10)}
	dents := make([]byte, 16<<10)
	queue := []string{rel}
	visited := 0
	for len(queue) > 0 {
		if err := ctx.Err(); err != nil {
			return skipped, err
		}
		rel := queue[0]
		queue = queue[1:]
		if max > 0 && visited >= max {
			skipped++
			continue
		}
		dir := m.Dir
		if rel != "" {
			dir = filepath.Join(m.Dir, rel)
		}
		fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
		if err != nil {
			if rel != top && (errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR)) {
				continue // removed since it was listed
			}
			return skipped, fmt.Errorf("open %s: %w", dir, err)
		}
		visited++
		d.fd, d.Rel, d.Path = fd, rel, m.PathOf(rel)
		ferr := fn(&d)
		// Children after the files: a cgroup created meanwhile is read on
		// the next look.
		lerr := eachSubdir(fd, dents, func(name string) {
			if rel == "" {
				queue = append(queue, name)
			} else {
				queue = append(queue, rel+"/"+name)
			}
		})
		unix.Close(fd)
		if ferr != nil {
			return skipped, ferr
		}
		if lerr != nil && rel == top {
			return skipped, fmt.Errorf("list %s: %w", dir, lerr)
		}
	}
	return skipped, nil
}

// Visit calls fn with each cgroup of rels (from Rel or an earlier walk's
// Dir.Rel), without listing their children: the cgroups a light look
// re-reads. A cgroup removed since is skipped.
func (m *Mount) Visit(ctx context.Context, rels []string, fn func(d *Dir) error) error {
	d := Dir{buf: make([]byte, 8<<10)}
	for _, rel := range rels {
		if err := ctx.Err(); err != nil {
			return err
		}
		fd, err := unix.Open(filepath.Join(m.Dir, rel), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
		if err != nil {
			continue
		}
		d.fd, d.Rel, d.Path = fd, rel, m.PathOf(rel)
		err = fn(&d)
		unix.Close(fd)
		if err != nil {
			return err
		}
	}
	return nil
}

// eachSubdir calls fn with the name of every subdirectory of the directory
// open at fd, from getdents64's d_type (kernfs and every filesystem a
// fixture tree lives on fill it in).
func eachSubdir(fd int, buf []byte, fn func(name string)) error {
	for {
		n, err := unix.Getdents(fd, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		if n == 0 {
			return nil
		}
		// struct linux_dirent64: ino u64, off s64, reclen u16, type u8, name.
		for b := buf[:n]; len(b) >= 19; {
			reclen := int(b[16]) | int(b[17])<<8
			if reclen < 20 || reclen > len(b) {
				break
			}
			typ, name := b[18], b[19:reclen]
			for i, c := range name {
				if c == 0 {
					name = name[:i]
					break
				}
			}
			if typ == unix.DT_DIR && string(name) != "." && string(name) != ".." {
				fn(string(name))
			}
			b = b[reclen:]
		}
	}
}
