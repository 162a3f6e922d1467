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
}

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
	name := path.Base(s.Path) + "." + r.opts.Now().UTC().Format("20060102T150405Z")
	if o.dry() {
		o.res.Result = fmt.Sprintf("would copy %s (%d bytes) to %s", s.Path, st.Size, path.Join(s.To, name))
		return
	}
	tmp := "." + name + "." + randHex() + ".picket-tmp"
	if !o.intent([]any{s.Path}, &Undo{Temp: path.Join(s.To, tmp)}, time.Time{}) {
		return
	}
	final, err := copyInto(int(dir.Fd()), tmp, name, src, &st)
	if err != nil {
		o.finish("failed", fmt.Errorf("archive %s: %w", s.Path, err), "")
		return
	}
	dst := path.Join(s.To, final)
	o.res.Targets = []any{s.Path, dst}
	o.finish(fmt.Sprintf("archived %s as %s (%d bytes)", s.Path, dst, st.Size), nil, "")
}

// copyInto copies src into dirfd/tmp, gives it src's owner, mode and times,
// fsyncs it and renames it to name (or name-1, name-2...: never replacing).
func copyInto(dirfd int, tmp, name string, src *os.File, st *unix.Stat_t) (string, error) {
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
	if _, err := io.Copy(f, src); err != nil {
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
