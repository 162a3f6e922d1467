package act

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/prometheus/procfs"

	"github.com/picket-guard/picket/internal/cgroup"
	"github.com/picket-guard/picket/internal/procid"
)

// proc is one process as an action sees it when it decides: what identifies
// it (pid and start time) and what selectors and the safety rules look at.
// It is read by procid, the reader the collector's walk parses with too, so
// a process picked from a snapshot is recognised by the same fields here.
type proc struct {
	pid, ppid, pgrp, sid, tty int
	uid                       uint32 // effective, as ps's user column
	comm, state               string
	kthread                   bool
	start                     uint64 // stat field 22, starttime: clock ticks after boot
}

// gone reports a process that has exited: a zombie keeps its /proc entry
// and its pid until reaped, but it can no longer do harm or be signalled.
func (p proc) gone() bool { return p.state == "Z" || p.state == "X" }

// procFS reads ROOT/proc and ROOT/etc: identities and accounts through
// procid, cgroups through internal/cgroup, the rest (cmdline, exe) through
// prometheus/procfs.
type procFS struct {
	ids   procid.FS
	users *procid.Users
	fs    procfs.FS
	dir   string
	root  string
}

func newProcFS(root string) (procFS, error) {
	dir := filepath.Join(root, "proc")
	fs, err := procfs.NewFS(dir)
	if err != nil {
		return procFS{}, fmt.Errorf("open %s: %w", dir, err)
	}
	ids, err := procid.NewFS(root)
	if err != nil {
		return procFS{}, err
	}
	return procFS{ids: ids, users: procid.NewUsers(root), fs: fs, dir: dir, root: root}, nil
}

// read reads one process's stat and status. Any error means the process
// cannot be vouched for (usually: it exited); callers treat it as gone.
func (f procFS) read(pid int) (proc, error) {
	p, err := f.ids.Process(pid)
	if err != nil {
		return proc{}, err
	}
	return proc{
		pid: p.PID, ppid: p.PPID, pgrp: p.PGRP, sid: p.Session, tty: p.TTY,
		uid:  p.UID,
		comm: p.Comm, state: string(p.State),
		kthread: p.KernelThread(),
		start:   p.Starttime,
	}, nil
}

// all reads every process; those that exit meanwhile are skipped.
func (f procFS) all() ([]proc, error) {
	d, err := os.Open(f.dir)
	if err != nil {
		return nil, err
	}
	names, err := d.Readdirnames(-1)
	d.Close()
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", f.dir, err)
	}
	out := make([]proc, 0, len(names))
	for _, n := range names {
		pid, err := strconv.Atoi(n)
		if err != nil || pid <= 0 {
			continue
		}
		if p, err := f.read(pid); err == nil {
			out = append(out, p)
		}
	}
	return out, nil
}

func (f procFS) cmdline(pid int) string {
	pp, err := f.fs.Proc(pid)
	if err != nil {
		return ""
	}
	a, _ := pp.CmdLine()
	return strings.Join(a, " ")
}

func (f procFS) exe(pid int) string {
	pp, err := f.fs.Proc(pid)
	if err != nil {
		return ""
	}
	e, _ := pp.Executable()
	return e
}

// cgroups is the process's place in every hierarchy, read by
// internal/cgroup: the reader the collector's walk parses with, so a
// process the snapshot shows in a cgroup is found there by the selectors.
func (f procFS) cgroups(pid int) (cgroup.Paths, error) { return cgroup.ProcFile(f.root, pid) }

// cgroup is the process's cgroup path (cgroup.Pick's primary: the unified
// hierarchy's, else systemd's, else its v1 pids or memory cgroup), "" when
// unreadable.
func (f procFS) cgroup(pid int) string {
	ps, err := f.cgroups(pid)
	if err != nil {
		return ""
	}
	return ps.Primary
}

// bootTime is btime of ROOT/proc/stat, in Unix seconds.
func (f procFS) bootTime() (int64, error) { return f.ids.BootTime() }

// lookupUID resolves a user name (or a decimal uid) from ROOT/etc/passwd.
func (f procFS) lookupUID(user string) (uint32, error) {
	return f.users.Accounts().Lookup(user)
}

// adminUIDs is root plus every member of the admin groups (by primary gid
// or by the group's member list).
func (f procFS) adminUIDs(groups []string) map[uint32]bool {
	out := f.users.Accounts().InGroups(groups)
	out[0] = true
	return out
}

// utmpLogin is one USER_PROCESS record of utmp: a logged-in user and the
// pid of the session's login process (the shell for login(1) and sshd).
type utmpLogin struct {
	user string
	pid  int
}

// utmp record layout on Linux (struct utmp in glibc's <bits/utmp.h>: 384
// bytes, host byte order).
const (
	utmpSize        = 384
	utmpUserProcess = 7
	utmpPIDOff      = 4
	utmpUserOff     = 44
	utmpUserLen     = 32
)

// readUtmp reads ROOT/run/utmp (or ROOT/var/run/utmp). A host without utmp
// (containers, minimal images) has no logins listed: the guard then relies
// on session leaders with a terminal instead.
func readUtmp(root string) []utmpLogin {
	var b []byte
	for _, p := range []string{"run/utmp", "var/run/utmp"} {
		var err error
		if b, err = os.ReadFile(filepath.Join(root, p)); err == nil {
			break
		}
	}
	var out []utmpLogin
	for off := 0; off+utmpSize <= len(b); off += utmpSize {
		r := b[off : off+utmpSize]
		if binary.NativeEndian.Uint16(r[0:2]) != utmpUserProcess {
			continue
		}
		user := r[utmpUserOff : utmpUserOff+utmpUserLen]
		if i := bytes.IndexByte(user, 0); i >= 0 {
			user = user[:i]
		}
		pid := int(int32(binary.NativeEndian.Uint32(r[utmpPIDOff : utmpPIDOff+4])))
		if pid > 0 {
			out = append(out, utmpLogin{string(user), pid})
		}
	}
	return out
}
