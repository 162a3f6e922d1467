package collect

import (
	"context"
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
type bpfSockets struct {
	iter  *sockiter.Iter
	tried bool
	why   string            // why the /proc walk runs instead ("" when iter is loaded)
	list  []sockiter.Socket // the last pass, by pid then fd
}

// ready loads the iterator once and says whether this look can use it.
func (b *bpfSockets) ready(c *Collector) bool {
	if b.tried {
		return b.iter != nil
	}
	if min := c.opts.BPFMinFiles; min > 0 {
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
	it, err := sockiter.Load()
	if err != nil {
		b.why = err.Error()
		return false
	}
	b.iter = it
	return true
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

// pass runs the iterator once. An error (the pass failed midway) makes
// this look walk fd/ instead.
func (b *bpfSockets) pass(ctx context.Context) error {
	list, err := b.iter.List(ctx, b.list[:0])
	if err != nil {
		return err
	}
	// The kernel walks tasks in pid order (task_seq_get_next asks
	// find_ge_pid for the next one) and each table in fd order; sorting
	// keeps the lookup below right whatever it does.
	if !slices.IsSortedFunc(list, bySocketPID) {
		slices.SortStableFunc(list, bySocketPID)
	}
	b.list = list
	return nil
}

func bySocketPID(a, b sockiter.Socket) int { return int(a.PID) - int(b.PID) }

// socketsOf returns the last pass's sockets of pid.
func (b *bpfSockets) socketsOf(pid int) []sockiter.Socket {
	lo, _ := slices.BinarySearchFunc(b.list, int32(pid), func(s sockiter.Socket, p int32) int { return int(s.PID) - int(p) })
	hi := lo
	for hi < len(b.list) && b.list[hi].PID == int32(pid) {
		hi++
	}
	return b.list[lo:hi]
}

// close unloads the iterator.
func (b *bpfSockets) close() error {
	err := b.iter.Close()
	b.iter, b.tried = nil, false
	return err
}

// note records in snap which way this look attributed sockets.
func (b *bpfSockets) note(snap *snapshot.Snapshot, used bool, why string) {
	if used {
		snap.Collector = snapshot.CollectorBPF
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
