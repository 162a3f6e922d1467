// Package procid reads what identifies a process: its pid, parent, session
// and terminal, owner, command name, start time and whether it is a kernel
// thread, from /proc/PID/stat and /proc/PID/status, and the account names of
// ROOT/etc/passwd and ROOT/etc/group.
//
// It is the one reader of those facts. The collector's walk calls ParseStat
// and ParseStatusUID on its own reused buffers; the action runner reads a
// process with FS.Process when it selects it and again right before it
// signals it. A signal reaches only the process that was selected because
// both sides parse, and compute the start time, in the same code.
//
// Everything is rooted, as prometheus/procfs is: NewFS("/") reads the live
// host, NewFS(dir) a fixture tree with dir/proc and dir/etc in the kernel's
// formats.
package procid

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/prometheus/procfs"
)

// UserHZ is USER_HZ, the unit of /proc/PID/stat's starttime (the kernel
// converts with nsec_to_clock_t): 100 on every architecture Go runs Linux
// on. sysconf(_SC_CLK_TCK) would need cgo, and the binary is static.
const UserHZ = 100

// StartTime is when a process started: btime (boot, in Unix seconds, from
// /proc/stat) plus its starttime in UserHZ ticks, in UTC. A start time
// recorded in a snapshot is compared with one computed now to tell a
// process from a later one that got its pid, so every caller computes it
// here and the two compare exactly.
func StartTime(btime int64, ticks uint64) time.Time {
	return time.Unix(btime+int64(ticks/UserHZ), int64(ticks%UserHZ)*int64(time.Second/UserHZ)).UTC()
}

// FS reads processes under ROOT/proc.
type FS struct {
	proc string
	fs   procfs.FS
}

// NewFS returns an FS reading root/proc (root "/" is the live host).
func NewFS(root string) (FS, error) {
	proc := filepath.Join(root, "proc")
	fs, err := procfs.NewFS(proc)
	if err != nil {
		return FS{}, fmt.Errorf("open %s: %w", proc, err)
	}
	return FS{proc: proc, fs: fs}, nil
}

// BootTime is btime of ROOT/proc/stat: when the host booted, in Unix
// seconds.
func (f FS) BootTime() (int64, error) {
	st, err := f.fs.Stat()
	if err != nil {
		return 0, err
	}
	return int64(st.BootTime), nil
}

// Process is one process's identity, as /proc/PID/stat and status showed
// it at one moment.
type Process struct {
	PID, PPID int
	PGRP      int
	Session   int
	TTY       int    // tty_nr: 0 when it has no controlling terminal
	UID       uint32 // effective, as ps's user column
	Comm      string
	State     byte   // stat's state: R, S, D, Z, X...
	Flags     uint64 // PF_* flags
	Starttime uint64 // clock ticks (UserHZ) after boot
}

// KernelThread says whether the process is a kernel thread (PF_KTHREAD).
func (p Process) KernelThread() bool { return p.Flags&KernelThreadFlag != 0 }

// StartTime is when the process started, given the host's boot time.
func (p Process) StartTime(btime int64) time.Time { return StartTime(btime, p.Starttime) }

// Process reads one process's stat and status. An error usually means it
// exited (the error then wraps fs.ErrNotExist or ESRCH); the caller cannot
// vouch for it either way.
func (f FS) Process(pid int) (Process, error) {
	dir := filepath.Join(f.proc, strconv.Itoa(pid))
	b, err := os.ReadFile(filepath.Join(dir, "stat"))
	if err != nil {
		return Process{}, err
	}
	var st Stat
	if err := ParseStat(b, &st); err != nil {
		return Process{}, fmt.Errorf("%s: %w", filepath.Join(dir, "stat"), err)
	}
	status, err := os.ReadFile(filepath.Join(dir, "status"))
	if err != nil {
		return Process{}, err
	}
	uid, err := ParseStatusUID(status)
	if err != nil {
		return Process{}, fmt.Errorf("%s: %w", filepath.Join(dir, "status"), err)
	}
	return Process{
		PID: st.PID, PPID: st.PPID, PGRP: st.PGRP, Session: st.Session, TTY: st.TTY,
		UID: uid, Comm: string(st.Comm), State: st.State, Flags: st.Flags,
		Starttime: st.Starttime,
	}, nil
}
