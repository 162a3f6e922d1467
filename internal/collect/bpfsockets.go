package collect

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/picket-guard/picket/internal/hostcap"
	"github.com/picket-guard/picket/internal/snapshot"
	"github.com/picket-guard/picket/internal/sockiter"
)

// bpfSockets attributes sockets with one pass of a BPF task_file iterator
// (internal/sockiter) instead of a readlink of every /proc/PID/fd entry:
// on a host with 40,000 fds that is the most of what a full look costs.
// The walk of /proc still reads every process (stat, the owner, the fd
// count from one stat of fd/), as a light look does; the iterator gives
// each its sockets. It is loaded at the first full look of the live host
// and kept; where it cannot load, the reason is kept and every full look
// walks fd/ as before.
//
// With it comes a task iterator (sockiter.Tasks) that reads every
// process's stat, status and cgroup fields in one pass too: a full look
// then opens no file of /proc/PID at all for most processes
// (fromTask). Where only it cannot load (a kernel before 6.2), sockets
// still come from the task_file iterator and processes from /proc.
type bpfSockets struct {
	iter  *sockiter.Iter
	tried bool
	why   string            // why the /proc walk runs instead ("" when iter is loaded)
	list  []sockiter.Socket // the last pass, by pid then fd
	fds   []sockiter.FDs    // the last pass's fd counts, by pid
	// tasks is the task iterator (nil where it did not load: tasksWhy
	// says why), tasks its last pass, by pid.
	tasks    *sockiter.Tasks
	tasksWhy string
	tlist    []sockiter.Task
	// how says how the programs were had (loaded, pinned, opened from
	// their pins): the snapshot's bpf_programs.
	how string
	// walkWhy says why the fd walk did not load or was given up ("":
	// it runs); pinDir is where the programs are pinned.
	walkWhy string
	pinDir  string
}

// ready loads the iterator once and says whether this look can use it.
func (b *bpfSockets) ready(c *Collector) bool {
	if b.tried {
		return b.iter != nil
	}
	if min := c.opts.BPFMinFiles; min > 0 && !sockiter.Pinned(c.opts.BPFPinDir) {
		// Asked again at every look until the iterator loads: a host can
		// grow busy.
		if n, ok := openFiles(c.proc); ok && n < min {
			b.why = fmt.Sprintf("%d files open (fewer than %d): the /proc walk costs less than loading the iterator", n, min)
			return false
		}
	}
	b.tried = true
	b.why = b.blocked(c)
	if b.why != "" {
		return false
	}
	// Both programs are relocated against one decoding of the kernel's
	// types (made only if a program is not opened from its pin), dropped
	// when ready returns.
	files, _ := openFiles(c.proc)
	o := sockiter.Options{Kernel: sockiter.NewKernel(), PinDir: c.opts.BPFPinDir, OpenFiles: files}
	// The fd walk lists what the task_file iterator lists in half its
	// time, on 6.2 and later (sockiter/walk.go).
	var it *sockiter.Iter
	err := errors.New("the task_file iterator was asked for")
	if !c.opts.BPFNoWalk {
		it, err = sockiter.LoadWalk(o)
	}
	if err != nil {
		b.walkWhy = err.Error()
		if it, err = sockiter.Load(o); err != nil {
			b.why = err.Error()
			return false
		}
	}
	b.iter, b.pinDir = it, c.opts.BPFPinDir
	if c.opts.ProcOnlyProcesses {
		b.tasksWhy = "the /proc walk was asked for"
	} else if t, err := sockiter.LoadTasks(o); err != nil {
		b.tasksWhy = err.Error()
	} else {
		b.tasks, b.tasksWhy = t, ""
	}
	b.how = programsHow(it, b.tasks) + b.walkNote()
	return true
}

// programsHow says how the iterators were had, once for both when they
// were had the same way.
func programsHow(it *sockiter.Iter, t *sockiter.Tasks) string {
	where := func(how, pin string) string {
		if pin != "" {
			return how + " (" + filepath.Dir(pin) + ")"
		}
		return how
	}
	f := where(it.How(), it.Pin())
	if t == nil {
		return it.Program() + " " + f
	}
	if k := where(t.How(), t.Pin()); k != f {
		return it.Program() + " " + f + "; task " + k
	}
	return f + ": " + it.Program() + " and task"
}

// walkNote says why the fd walk is not the socket pass, where it is not.
func (b *bpfSockets) walkNote() string {
	if b.walkWhy == "" {
		return ""
	}
	return " (not the fd walk: " + b.walkWhy + ")"
}

// openFiles is the number of file handles allocated on the host: the
// first field of /proc/sys/fs/file-nr (fs/file_table.c, proc_nr_files).
func openFiles(proc string) (int, bool) {
	b, err := os.ReadFile(filepath.Join(proc, "sys", "fs", "file-nr"))
	if err != nil {
		return 0, false
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0, false
	}
	n, err := strconv.Atoi(f[0])
	return n, err == nil
}

// blocked says why the iterator is not even tried ("" to try it).
func (b *bpfSockets) blocked(c *Collector) string {
	if c.opts.ProcOnly {
		return "the /proc walk was asked for"
	}
	h := c.opts.Host
	if h == nil {
		return ""
	}
	if f := h.Feature(hostcap.BPFIter); f.Probed && !f.Found {
		return "bpf_iter: " + f.Detail
	}
	if !h.Has(hostcap.BTF) {
		return "the kernel has no BTF (/sys/kernel/btf/vmlinux): the iterator cannot be relocated to it"
	}
	if !h.HasCap(hostcap.CapSysAdmin) && !(h.HasCap(hostcap.CapBPF) && h.HasCap(hostcap.CapPerfmon)) {
		return "loading the iterator needs CAP_BPF and CAP_PERFMON (or CAP_SYS_ADMIN)"
	}
	return ""
}

// pass runs the iterator once. Given countIn, the inode of a network
// namespace whose tables the look dumps (picket's own), the fd walk only
// counts the sockets those dumps list, by kind (procInfo.counted): the
// look needs nothing else of them, and at 31,000 sockets, decoding their
// records cost 7-9 % of a pinned one-shot's wall time and 1 MiB of fresh heap.
// An error (the pass failed midway) makes this look walk fd/ instead.
func (b *bpfSockets) pass(ctx context.Context, countIn uint64) error {
	b.iter.CountHashed(uint32(countIn))
	list, fds, err := b.iter.List(ctx, b.list[:0], b.fds[:0])
	if errors.Is(err, sockiter.ErrWalkFull) {
		// The host outgrew the array the fd walk was loaded with: the
		// task_file iterator has none to outgrow.
		b.walkWhy = err.Error()
		if it, lerr := sockiter.Load(sockiter.Options{Kernel: sockiter.NewKernel(), PinDir: b.pinDir}); lerr == nil {
			b.iter.Close()
			b.iter, b.how = it, programsHow(it, b.tasks)+b.walkNote()
			list, fds, err = b.iter.List(ctx, b.list[:0], b.fds[:0])
		}
	}
	if err != nil {
		return err
	}
	// The kernel walks tasks in pid order (task_seq_get_next asks
	// find_ge_pid for the next one) and each table in fd order; sorting
	// keeps the lookups below right whatever it does.
	if !slices.IsSortedFunc(list, bySocketPID) {
		slices.SortStableFunc(list, bySocketPID)
	}
	if !slices.IsSortedFunc(fds, byFDsPID) {
		fds = mergeFDs(fds)
	}
	b.list, b.fds = list, fds
	return nil
}

// taskPass runs the task iterator once, right after pass: a process
// started in between has no fds counted (it has a few), one gone in
// between is not listed (as one gone before the walk reads it). An error
// makes this look read /proc/PID instead.
func (b *bpfSockets) taskPass(ctx context.Context) error {
	tl, err := b.tasks.List(ctx, b.tlist[:0])
	if err != nil {
		return err
	}
	if !slices.IsSortedFunc(tl, byTaskPID) {
		slices.SortStableFunc(tl, byTaskPID)
	}
	b.tlist = tl
	return nil
}

func bySocketPID(a, b sockiter.Socket) int { return int(a.PID) - int(b.PID) }
func byFDsPID(a, b sockiter.FDs) int       { return int(a.PID) - int(b.PID) }
func byTaskPID(a, b sockiter.Task) int     { return int(a.PID) - int(b.PID) }

// mergeFDs sorts counts by pid and adds up a pid's counts.
func mergeFDs(fds []sockiter.FDs) []sockiter.FDs {
	slices.SortStableFunc(fds, byFDsPID)
	out := fds[:0]
	for _, f := range fds {
		if n := len(out); n > 0 && out[n-1].PID == f.PID {
			o := &out[n-1]
			o.N += f.N
			o.Counted.TCP += f.Counted.TCP
			o.Counted.UDP += f.Counted.UDP
			o.Counted.Unix += f.Counted.Unix
			continue
		}
		out = append(out, f)
	}
	return out
}

// dropSockets removes from the last pass the sockets of pid that drop
// says are not to be counted.
func (b *bpfSockets) dropSockets(pid int32, drop func(sockiter.Socket) bool) {
	lo, _ := slices.BinarySearchFunc(b.list, pid, func(s sockiter.Socket, p int32) int { return int(s.PID) - int(p) })
	hi := lo
	for hi < len(b.list) && b.list[hi].PID == pid {
		hi++
	}
	kept := slices.DeleteFunc(b.list[lo:hi], drop)
	if n := hi - lo - len(kept); n > 0 {
		b.list = slices.Delete(b.list, lo+len(kept), hi)
	}
}

// socketRange says where the last pass's sockets of pid are in its list:
// n of them from lo.
func (b *bpfSockets) socketRange(pid int) (lo, n int) {
	lo, _ = slices.BinarySearchFunc(b.list, int32(pid), func(s sockiter.Socket, p int32) int { return int(s.PID) - int(p) })
	hi := lo
	for hi < len(b.list) && b.list[hi].PID == int32(pid) {
		hi++
	}
	return lo, hi - lo
}

// bpfRef is the socket sk of the pass as a look counts it; hostNS is
// picket's own network namespace.
func bpfRef(sk sockiter.Socket, hostNS uint64) sockRef {
	r := sockRef{ino: sk.Inode, fd: sk.FD, kind: kindOfSocket(sk)}
	if sk.Hashed && uint64(sk.NetNS) == hostNS {
		r.hashed = dumpTable(r.kind, sk.Family)
	}
	return r
}

// fdsOf returns how many fds the last pass saw pid hold.
func (b *bpfSockets) fdsOf(pid int) int {
	i, ok := slices.BinarySearchFunc(b.fds, int32(pid), func(f sockiter.FDs, p int32) int { return int(f.PID) - int(p) })
	if !ok {
		return 0
	}
	return int(b.fds[i].N)
}

// countedOf returns the sockets of pid that the last pass counted rather
// than listed.
func (b *bpfSockets) countedOf(pid int) sockiter.Counts {
	i, ok := slices.BinarySearchFunc(b.fds, int32(pid), func(f sockiter.FDs, p int32) int { return int(f.PID) - int(p) })
	if !ok {
		return sockiter.Counts{}
	}
	return b.fds[i].Counted
}

// close unloads the iterator.
func (b *bpfSockets) close() error {
	err := errors.Join(b.iter.Close(), b.tasks.Close())
	b.iter, b.tasks, b.tried = nil, nil, false
	return err
}

// note records in snap which way this look attributed sockets (used)
// and read processes (tasksUsed).
func (b *bpfSockets) note(snap *snapshot.Snapshot, used bool, why string, tasksUsed bool, tasksWhy string) {
	if tasksUsed {
		snap.ProcessCollector = snapshot.CollectorBPF
	} else {
		snap.ProcessCollector, snap.ProcessCollectorReason = snapshot.CollectorProc, tasksWhy
	}
	if used {
		snap.Collector, snap.BPFPrograms = snapshot.CollectorBPF, b.how
		return
	}
	snap.Collector, snap.CollectorReason = snapshot.CollectorProc, why
}

// kindOfSocket is what a socket's family, type and protocol make it, as
// kindOfProto does from the name of its struct proto: the same kinds for
// the same sockets whichever path found them.
func kindOfSocket(s sockiter.Socket) sockKind {
	switch s.Family {
	case unix.AF_UNIX:
		return kindUnix
	case unix.AF_NETLINK:
		return kindNetlink
	case unix.AF_PACKET:
		return kindPacket
	case unix.AF_INET, unix.AF_INET6:
		switch {
		case s.Type == unix.SOCK_STREAM && s.Protocol == unix.IPPROTO_TCP:
			return kindTCP
		case s.Type == unix.SOCK_DGRAM && s.Protocol == unix.IPPROTO_UDP:
			return kindUDP
		case s.Type == unix.SOCK_RAW:
			return kindRaw
		}
	}
	// MPTCP, UDP-Lite, ping, SCTP, vsock, AF_ALG...: "other", as their
	// proto names are to kindOfProto.
	return kindOther
}

// Prepare loads now what the first full look of the live host would load
// (the BPF iterator), and says how full looks will attribute sockets.
// picket run calls it before it locks its memory: loading relocates the
// program against the kernel's BTF, megabytes of garbage that the heap can
// give back only while it is not locked yet.
func (c *Collector) Prepare() (collector, reason string) {
	if !c.live {
		return "", ""
	}
	if c.scanner.bpf.ready(c) {
		return snapshot.CollectorBPF, ""
	}
	return snapshot.CollectorProc, c.scanner.bpf.why
}

// Close releases what the collector holds in the kernel (the BPF
// iterator). The Collector can still be used: the next full look loads it
// again.
func (c *Collector) Close() error {
	if err := c.scanner.bpf.close(); err != nil {
		return fmt.Errorf("close the BPF iterator: %w", err)
	}
	return nil
}
