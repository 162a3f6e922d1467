package collect

import (
	"fmt"
	"path/filepath"
	"strconv"

	"github.com/picket-guard/picket/internal/cgroup"
	"github.com/picket-guard/picket/internal/procid"
	"github.com/picket-guard/picket/internal/sockiter"
)

// fromTask is readProc for a process the task iterator saw: the same
// fields from its record, with no file of /proc/PID opened, except
//   - stat, for a kernel thread whose name the record may have cut
//     (Task.CommComplete): a few kworkers;
//   - cgroup, for a process in a cgroup the index does not know yet (one
//     created since the index was built, or on a host where ids cannot be
//     turned into paths: cgroupIndex.refresh).
//
// Its fd count is the task_file pass's; its owner the effective uid,
// which is what /proc/PID's owner is (readProc confirms a root owner from
// status, where a process that changed uid shows root: task_dump_owner).
func (w *procWorker) fromTask(procfd int, t *sockiter.Task) (procInfo, error) {
	c := w.s.c
	p := procInfo{
		pid:        int(t.PID),
		ppid:       int(t.PPID),
		uid:        t.EUID,
		ruid:       t.UID,
		state:      t.State(),
		kthread:    t.KernelThread(),
		startTicks: t.StartTicks(),
		threads:    int(t.Threads),
		rssPages:   int64(t.RSSPages),
	}
	base := len(strconv.AppendInt(w.path[:0], int64(p.pid), 10))
	if t.CommComplete() {
		p.comm = w.internComm(t.Comm())
	} else {
		w.path = append(w.path[:base], "/stat\x00"...)
		n, err := readAt(procfd, w.path, w.buf)
		if err != nil {
			return p, vanished(err, c.proc, p.pid, "stat")
		}
		var stat procid.Stat
		if err := procid.ParseStat(w.buf[:n], &stat); err != nil {
			return p, fmt.Errorf("%s: %w", filepath.Join(c.proc, strconv.Itoa(p.pid), "stat"), err)
		}
		p.comm = string(stat.Comm)
	}
	if !p.kthread {
		p.fds = w.s.bpf.fdsOf(p.pid)
	}
	switch {
	case !c.cgroupsMounted:
	case p.kthread:
		p.cgroup = "/"
	default:
		var pick cgroup.Pick
		if w.s.cgIDs.pick(t, &pick) {
			w.setCgroup(&pick, &p)
		} else {
			w.readCgroup(procfd, base, &p)
		}
	}
	return p, nil
}

// internComm returns the string of a process name, allocating it only the
// first time the worker sees it: thousands of processes share a few
// hundred names (every php-fpm worker is "php-fpm8.2").
func (w *procWorker) internComm(b []byte) string {
	if s, ok := w.comms[string(b)]; ok {
		return s
	}
	if len(w.comms) >= maxInterned {
		clear(w.comms)
	}
	s := string(b)
	w.comms[s] = s
	return s
}
