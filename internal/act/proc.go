package act

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/procfs"
)

// proc is one process as an action sees it when it decides: what identifies
// it (pid and start time) and what selectors and the safety rules look at.
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

// pfKthread is PF_KTHREAD (include/linux/sched.h).
const pfKthread = 0x00200000

// userHZ is USER_HZ, the unit of starttime (see collect).
const userHZ = 100

// procFS reads ROOT/proc through prometheus/procfs.
type procFS struct {
	fs  procfs.FS
	dir string
}

func newProcFS(root string) (procFS, error) {
	dir := filepath.Join(root, "proc")
	fs, err := procfs.NewFS(dir)
	if err != nil {
		return procFS{}, fmt.Errorf("open %s: %w", dir, err)
	}
	return procFS{fs: fs, dir: dir}, nil
}

// read reads one process's stat and status. Any error means the process
// cannot be vouched for (usually: it exited); callers treat it as gone.
func (f procFS) read(pid int) (proc, error) {
	pp, err := f.fs.Proc(pid)
	if err != nil {
		return proc{}, err
	}
	st, err := pp.Stat()
	if err != nil {
		return proc{}, err
	}
	status, err := pp.NewStatus()
	if err != nil {
		return proc{}, err
	}
	return proc{
		pid: st.PID, ppid: st.PPID, pgrp: st.PGRP, sid: st.Session, tty: st.TTY,
		uid:  uint32(status.UIDs[1]),
		comm: st.Comm, state: st.State,
		kthread: st.Flags&pfKthread != 0,
		start:   st.Starttime,
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

// cgroup is the process's cgroup path in the unified (v2) hierarchy; on a
// hybrid host where that is "/", the name=systemd hierarchy's path, which is
// where systemd keeps services and sessions apart. "" when unreadable.
func (f procFS) cgroup(pid int) string {
	pp, err := f.fs.Proc(pid)
	if err != nil {
		return ""
	}
	cgs, err := pp.Cgroups()
	if err != nil {
		return ""
	}
	v2, named := "", ""
	for _, c := range cgs {
		if c.HierarchyID == 0 {
			v2 = c.Path
		}
		for _, ctl := range c.Controllers {
			if ctl == "name=systemd" {
				named = c.Path
			}
		}
	}
	if (v2 == "" || v2 == "/") && named != "" {
		return named
	}
	return v2
}

// controllerPath is the process's path in the v1 hierarchy of controller.
func (f procFS) controllerPath(pid int, controller string) string {
	pp, err := f.fs.Proc(pid)
	if err != nil {
		return ""
	}
	cgs, _ := pp.Cgroups()
	for _, c := range cgs {
		for _, ctl := range c.Controllers {
			if ctl == controller {
				return c.Path
			}
		}
	}
	return ""
}

// bootTime is btime of ROOT/proc/stat, in Unix seconds.
func (f procFS) bootTime() (int64, error) {
	st, err := f.fs.Stat()
	if err != nil {
		return 0, err
	}
	return int64(st.BootTime), nil
}

// startTime is when p started, computed as collect computes
// snapshot.Process.StartTime, so the two compare exactly.
func startTime(btime int64, ticks uint64) time.Time {
	return time.Unix(btime+int64(ticks/userHZ), int64(ticks%userHZ)*int64(time.Second/userHZ)).UTC()
}

// account is one line of ROOT/etc/passwd.
type account struct {
	name string
	uid  uint32
	gid  uint32
}

func readPasswd(root string) []account {
	var out []account
	eachLine(filepath.Join(root, "etc", "passwd"), func(f []string) {
		if len(f) < 4 {
			return
		}
		uid, err1 := strconv.ParseUint(f[2], 10, 32)
		gid, err2 := strconv.ParseUint(f[3], 10, 32)
		if err1 == nil && err2 == nil && f[0] != "" {
			out = append(out, account{f[0], uint32(uid), uint32(gid)})
		}
	})
	return out
}

// lookupUID resolves a user name (or a decimal uid) from ROOT/etc/passwd.
// The binary is static, so NSS is not consulted (see collect's userTable).
func lookupUID(root, user string) (uint32, error) {
	if n, err := strconv.ParseUint(user, 10, 32); err == nil {
		return uint32(n), nil
	}
	for _, a := range readPasswd(root) {
		if a.name == user {
			return a.uid, nil
		}
	}
	return 0, fmt.Errorf("unknown user %q", user)
}

// adminUIDs is root plus every member of the admin groups (by primary gid
// or by the group's member list).
func adminUIDs(root string, groups []string) map[uint32]bool {
	want := map[string]bool{}
	for _, g := range groups {
		want[g] = true
	}
	gids := map[uint32]bool{}
	members := map[string]bool{}
	eachLine(filepath.Join(root, "etc", "group"), func(f []string) {
		if len(f) < 4 || !want[f[0]] {
			return
		}
		if gid, err := strconv.ParseUint(f[2], 10, 32); err == nil {
			gids[uint32(gid)] = true
		}
		for _, m := range strings.Split(f[3], ",") {
			if m != "" {
				members[m] = true
			}
		}
	})
	out := map[uint32]bool{0: true}
	for _, a := range readPasswd(root) {
		if gids[a.gid] || members[a.name] {
			out[a.uid] = true
		}
	}
	return out
}

func eachLine(path string, fn func([]string)) {
	b, err := os.ReadFile(path)
	if err != nil {
		return
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		fn(strings.Split(line, ":"))
	}
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
