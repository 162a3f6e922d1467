// Package secpath checks that files picket trusts as root (its
// configuration, its state directory and what is in it) can be changed by
// no one but root and picket's own user: sshd's StrictModes
// (auth.c:secure_filename, safe_path), which walks every directory from
// the file up to /.
package secpath

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// ownerOK: root, or the user picket runs as.
func ownerOK(uid uint32) bool { return uid == 0 || int(uid) == os.Geteuid() }

// File checks the file at path as opened (fstat of the descriptor, so the
// file checked is the file read) and every directory above it: each owned
// by root or picket's user and writable by neither group nor others. A
// directory owned by root with the sticky bit (/tmp) is allowed where sshd
// would refuse it: in it no one may rename or remove an entry they do not
// own, so the entry below it cannot be swapped.
func File(path string) error {
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return fmt.Errorf("stat %s: %w", path, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return fmt.Errorf("%s is not a regular file", path)
	}
	if err := check(path, &st, false); err != nil {
		return err
	}
	return ancestors(f, path)
}

// Dir checks a directory picket keeps its state in: owned by picket's user
// (not merely root: a root-owned state dir of a picket running as another
// user would be one it cannot write), writable by no one else, and every
// directory above it as File checks them.
func Dir(path string) error {
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return fmt.Errorf("stat %s: %w", path, err)
	}
	if int(st.Uid) != os.Geteuid() {
		return fmt.Errorf("%s is owned by uid %d, not by picket's user (uid %d): refusing a state directory another user controls", path, st.Uid, os.Geteuid())
	}
	if st.Mode&0o022 != 0 {
		return fmt.Errorf("%s is writable by group or others (mode %#o): another user could plant a symlink as picket's log or journal (chmod go-w %s)", path, st.Mode&0o7777, path)
	}
	return ancestors(f, path)
}

// check is one component's test.
func check(path string, st *unix.Stat_t, dir bool) error {
	if !ownerOK(st.Uid) {
		return fmt.Errorf("%s is owned by uid %d, not root or picket's user: refusing what others could change", path, st.Uid)
	}
	if st.Mode&0o022 != 0 && !(dir && st.Uid == 0 && st.Mode&unix.S_ISVTX != 0) {
		return fmt.Errorf("%s is writable by group or others (mode %#o): refusing what others could change", path, st.Mode&0o7777)
	}
	return nil
}

// ancestors walks from the opened file's directory up to /. The name comes
// from the descriptor (/proc/self/fd), so a symlink on the way is resolved
// to the directories that actually hold the file.
func ancestors(f *os.File, path string) error {
	real, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(int(f.Fd())))
	if err != nil || !filepath.IsAbs(real) {
		if real, err = filepath.EvalSymlinks(path); err != nil {
			return err
		}
		if real, err = filepath.Abs(real); err != nil {
			return err
		}
	}
	for d := filepath.Dir(real); ; d = filepath.Dir(d) {
		var st unix.Stat_t
		if err := unix.Stat(d, &st); err != nil {
			return fmt.Errorf("stat %s: %w", d, err)
		}
		if err := check(d, &st, true); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		if d == "/" {
			return nil
		}
	}
}

// Token reads a bearer token from path, checked as ssh checks a private
// key and sshd's StrictModes an authorized_keys file: a regular file,
// owned by root or picket's user, with no permission for group or others
// (one who reads it reads everything picket sees and can undo its
// actions; one who writes it chooses the token). The token is one line of
// printable ASCII without spaces, at least minLen characters. The daemon
// checks its own token file with it, and picket top the one it sends.
func Token(path string, minLen int) (string, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		return "", err
	}
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return "", fmt.Errorf("stat %s: %w", path, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return "", fmt.Errorf("%s: not a regular file", path)
	}
	if perm := st.Mode & 0o777; perm&0o077 != 0 {
		return "", fmt.Errorf("%s: mode %04o lets group or others read or write it; chmod 600 %s", path, perm, path)
	}
	if !ownerOK(st.Uid) {
		return "", fmt.Errorf("%s: owned by uid %d, want root or uid %d (picket's user)", path, st.Uid, os.Geteuid())
	}
	b, err := io.ReadAll(io.LimitReader(f, 4096))
	if err != nil {
		return "", fmt.Errorf("read %s: %w", path, err)
	}
	tok := strings.TrimSpace(string(b))
	if len(tok) < minLen {
		return "", fmt.Errorf("%s: the token is shorter than %d characters (try: head -c 32 /dev/urandom | base64 > %s)", path, minLen, path)
	}
	if tok == "" || strings.ContainsFunc(tok, func(c rune) bool { return c <= ' ' || c > '~' }) {
		return "", fmt.Errorf("%s: the token must be one line of printable ASCII without spaces", path)
	}
	return tok, nil
}
