package act

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// ArchiveSpec copies Path into the directory To as NAME.TIMESTAMP, keeping
// mode, owner and times; the imapd storm's `cp -p /var/mail/USER /var/mail/arc/USER.NOW`.
// Both must lie under one of Roots, reached without following a symlink.
//
//	archive: {path: "/var/mail/{{.user}}", to: /var/mail/arc, roots: [/var/mail], if_exists: true}
type ArchiveSpec struct {
	Path  string   `yaml:"path" json:"path"`
	To    string   `yaml:"to" json:"to"`
	Roots []string `yaml:"roots" json:"roots"`
	// IfExists: a missing Path is "nothing to archive", not an error (PIKT's
	// `if -e`).
	IfExists bool `yaml:"if_exists" json:"if_exists,omitempty"`
	// MaxBytes is the most data one archive copies (default 1 GiB): a file
	// holding more is refused, nothing copied. Holes are not data: a
	// sparse file is copied sparse, its holes left holes.
	MaxBytes int64 `yaml:"max_bytes" json:"max_bytes,omitempty"`
}

// defaultArchiveMax bounds an archive's copy: a mail spool is megabytes;
// a user who can write the file can make it as big as the disk.
const defaultArchiveMax = 1 << 30

func (s *ArchiveSpec) maxBytes() int64 {
	if s.MaxBytes > 0 {
		return s.MaxBytes
	}
	return defaultArchiveMax
}

// The free space an archive leaves on the filesystem it writes to: 5 % of
// it, and at least 16 MiB, so the journal (often on the same /var), the
// spool and the mail system itself can still write when the archive is
// done. A full /var refuses every later action: none can be journaled.
const (
	archiveReservePercent = 5
	archiveReserveMin     = 16 << 20
)

func (*ArchiveSpec) Kind() string { return "archive" }

func (s *ArchiveSpec) Validate() error {
	var errs []error
	if len(s.Roots) == 0 {
		errs = append(errs, errors.New("archive: roots is required (the directories archive may read from and write to)"))
	}
	for _, r := range s.Roots {
		if !path.IsAbs(r) || hasDotDot(r) {
			errs = append(errs, fmt.Errorf("archive: root %q must be an absolute path without . or .. components", r))
		}
	}
	if s.MaxBytes < 0 {
		errs = append(errs, errors.New("archive: max_bytes must not be negative (0: the default, 1 GiB)"))
	}
	for _, f := range []struct{ name, v string }{{"path", s.Path}, {"to", s.To}} {
		if f.v == "" {
			errs = append(errs, fmt.Errorf("archive: %s is required", f.name))
		} else if !strings.HasPrefix(f.v, "/") {
			errs = append(errs, fmt.Errorf("archive: %s %q is not an absolute path", f.name, f.v))
		}
	}
	return errors.Join(errs...)
}

// archive is PIKT's archive_mail_file in the imapd storm: `cp -p /var/mail/USER
// /var/mail/arc/USER.NOW`, where USER came from a process table. Both ends
// are opened beneath a configured root without following symlinks (safety
// rule 8); the copy is written to an O_EXCL temporary file in the archive
// directory, then renamed into place without ever replacing a file.
func (r *Runner) archive(ctx context.Context, o *op, s *ArchiveSpec) {
	srcRoot, srcRel, err := underRoot(s.Path, s.Roots)
	if err != nil {
		o.refuse(err)
		return
	}
	dstRoot, dstRel, err := underRoot(s.To, s.Roots)
	if err != nil {
		o.refuse(err)
		return
	}
	o.res.Targets = []any{s.Path}
	// O_NOATIME: mail readers compare a spool's atime with its mtime to say
	// "new mail"; archiving it must not read it for them. Only the owner (or
	// root) may ask for it.
	src, err := r.openBeneath(srcRoot, srcRel, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_NOATIME, 0)
	if errors.Is(err, unix.EPERM) {
		src, err = r.openBeneath(srcRoot, srcRel, unix.O_RDONLY|unix.O_NONBLOCK, 0)
	}
	switch {
	case errors.Is(err, os.ErrNotExist) && s.IfExists:
		o.res.Result = "nothing to archive: " + s.Path + " does not exist"
		return
	case errors.Is(err, errRefusedPath):
		o.refuse(err)
		return
	case err != nil:
		o.refuse(err)
		return
	}
	defer src.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(src.Fd()), &st); err != nil {
		o.refuse(fmt.Errorf("stat %s: %w", s.Path, err))
		return
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		o.refuse(fmt.Errorf("%s is not a regular file", s.Path))
		return
	}
	dir, err := r.openBeneath(dstRoot, dstRel, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		o.refuse(err)
		return
	}
	defer dir.Close()
	// What the copy writes is the file's data, not its apparent size
	// (st_blocks counts 512-byte units whatever the block size: stat(2)).
	data := st.Blocks * 512
	if data > st.Size {
		data = st.Size // a small file's last block is not all data
	}
	if max := s.maxBytes(); data > max {
		o.refuse(fmt.Errorf("%s holds %d bytes of data, more than max_bytes %d", s.Path, data, max))
		return
	}
	if err := roomFor(int(dir.Fd()), data); err != nil {
		o.refuse(fmt.Errorf("%s (%d bytes of data) into %s: %w", s.Path, data, s.To, err))
		return
	}
	name := path.Base(s.Path) + "." + r.opts.Now().UTC().Format("20060102T150405Z")
	if o.dry() {
		o.res.Result = fmt.Sprintf("would copy %s (%d bytes, %d of data) to %s", s.Path, st.Size, data, path.Join(s.To, name))
		return
	}
	tmp := "." + name + "." + randHex() + ".picket-tmp"
	if !o.intent([]any{s.Path}, &Undo{Temp: path.Join(s.To, tmp)}, time.Time{}) {
		return
	}
	final, err := copyInto(ctx, int(dir.Fd()), tmp, name, src, &st, s.maxBytes())
	if err != nil {
		o.finish("failed", fmt.Errorf("archive %s: %w", s.Path, err), "")
		return
	}
	dst := path.Join(s.To, final)
	o.res.Targets = []any{s.Path, dst}
	o.finish(fmt.Sprintf("archived %s as %s (%d bytes)", s.Path, dst, st.Size), nil, "")
}

// roomFor checks that writing need bytes beneath dirfd leaves the
// filesystem its reserve (statfs(2): f_bavail, the blocks an unprivileged
// writer may still use; picket as root could eat into the root reserve
// too, which is the mail system's and the journal's).
func roomFor(dirfd int, need int64) error {
	var fs unix.Statfs_t
	if err := unix.Fstatfs(dirfd, &fs); err != nil {
		return fmt.Errorf("statfs: %w", err)
	}
	bs := int64(fs.Bsize)
	avail, size := int64(fs.Bavail)*bs, int64(fs.Blocks)*bs
	reserve := max(size*archiveReservePercent/100, archiveReserveMin)
	if avail-need < reserve {
		return fmt.Errorf("would leave %d bytes free on its filesystem, less than the %d kept free (5%%, at least 16 MiB)", avail-need, reserve)
	}
	return nil
}

// copyInto copies src into dirfd/tmp, gives it src's owner, mode and times,
// fsyncs it and renames it to name (or name-1, name-2...: never replacing).
// The copy ends with ctx (the action's timeout), and past max bytes of data
// (a file that grew since it was measured).
func copyInto(ctx context.Context, dirfd int, tmp, name string, src *os.File, st *unix.Stat_t, max int64) (string, error) {
	fd, err := unix.Openat(dirfd, tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return "", fmt.Errorf("create %s: %w", tmp, err)
	}
	f := os.NewFile(uintptr(fd), tmp)
	ok := false
	defer func() {
		f.Close()
		if !ok {
			unix.Unlinkat(dirfd, tmp, 0)
		}
	}()
	if err := copySparse(ctx, f, src, st.Size, max); err != nil {
		return "", fmt.Errorf("copy: %w", err)
	}
	// Owner before mode: chown clears the set-id bits.
	if err := unix.Fchown(fd, int(st.Uid), int(st.Gid)); err != nil {
		return "", fmt.Errorf("preserve owner %d:%d: %w", st.Uid, st.Gid, err)
	}
	if err := unix.Fchmod(fd, st.Mode&0o7777); err != nil {
		return "", fmt.Errorf("preserve mode: %w", err)
	}
	times := []unix.Timespec{st.Atim, st.Mtim}
	if err := unix.UtimesNanoAt(dirfd, tmp, times, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return "", fmt.Errorf("preserve times: %w", err)
	}
	if err := f.Sync(); err != nil {
		return "", fmt.Errorf("fsync: %w", err)
	}
	for i := 0; i < 100; i++ {
		final := name
		if i > 0 {
			final = name + "-" + strconv.Itoa(i)
		}
		err := unix.Renameat2(dirfd, tmp, dirfd, final, unix.RENAME_NOREPLACE)
		if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOSYS) {
			// No RENAME_NOREPLACE on this filesystem: link(2) never replaces either.
			if err = unix.Linkat(dirfd, tmp, dirfd, final, 0); err == nil {
				unix.Unlinkat(dirfd, tmp, 0)
			}
		}
		if errors.Is(err, unix.EEXIST) {
			continue
		}
		if err != nil {
			return "", fmt.Errorf("rename into place: %w", err)
		}
		ok = true
		unix.Fsync(dirfd)
		return final, nil
	}
	return "", fmt.Errorf("%s and 99 numbered names exist already", name)
}

// copyChunk is what one read and one write move: the context is checked
// between chunks, so a timeout stops a copy within one of them.
const copyChunk = 1 << 20

// copySparse copies the first size bytes of src to dst, data extents only
// (lseek SEEK_DATA/SEEK_HOLE, Linux 3.1; what cp --sparse=auto does): the
// holes of a sparse file stay holes, and a 1 GiB file of one written block
// costs one block. A filesystem without SEEK_DATA (EINVAL) is copied whole.
func copySparse(ctx context.Context, dst, src *os.File, size, max int64) error {
	sfd := int(src.Fd())
	buf := make([]byte, copyChunk)
	var copied int64
	for off := int64(0); off < size; {
		data, err := unix.Seek(sfd, off, unix.SEEK_DATA)
		switch {
		case errors.Is(err, unix.ENXIO):
			off = size // only a hole is left
			continue
		case errors.Is(err, unix.EINVAL):
			data = off // no SEEK_DATA here: everything is data
		case err != nil:
			return fmt.Errorf("seek data: %w", err)
		}
		end, err := unix.Seek(sfd, data, unix.SEEK_HOLE)
		if err != nil || end > size {
			end = size
		}
		for data < end {
			if err := ctx.Err(); err != nil {
				return err
			}
			n := min(int64(len(buf)), end-data)
			if copied+n > max {
				return fmt.Errorf("more than max_bytes %d of data: the file grew while it was copied", max)
			}
			m, err := src.ReadAt(buf[:n], data)
			if m > 0 {
				if _, werr := dst.WriteAt(buf[:m], data); werr != nil {
					return werr
				}
			}
			copied += int64(m)
			data += int64(m)
			if err == io.EOF {
				end, size = data, data // the file shrank
			} else if err != nil {
				return err
			}
		}
		off = end
	}
	// The apparent size, with the trailing hole if there is one.
	return dst.Truncate(size)
}
