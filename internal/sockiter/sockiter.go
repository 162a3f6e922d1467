// Package sockiter lists every socket fd of every process in one pass of a
// BPF task_file iterator (Linux 5.8; the program asks bpf_sock_from_file,
// 5.11): the kernel walks each process's file
// table and writes one record per socket, read back with read(2). It is
// what the /proc walk does with one readlink of /proc/PID/fd/N per fd (ss
// -p and lsof pay the same), about 40 times cheaper per fd.
//
// The program (bpf/task_file.bpf.c) is compiled once against a few kernel
// types and relocated to the running kernel's layout at load (CO-RE, from
// /sys/kernel/btf/vmlinux), so it needs BTF; loading it needs CAP_BPF and
// CAP_PERFMON (or CAP_SYS_ADMIN) and a kernel not locked down against
// reading its memory. Where any of that is missing, Load says why and the
// caller walks /proc instead.
package sockiter

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strings"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
)

// Socket is one socket fd as the iterator saw it.
type Socket struct {
	PID   int32  // the process (thread group) holding it, in the initial pid namespace
	FD    int32  // its number in that process's table
	Inode uint64 // the socket's inode: "socket:[INODE]" in /proc/PID/fd
	// Family (AF_*), Type (SOCK_*) and Protocol (IPPROTO_*, or the netlink
	// family) are the socket's own; State is sk_state (TCP_* for TCP,
	// TCP_ESTABLISHED for a connected UDP or unix socket). All zero for a
	// socket with no struct sock left (one being torn down).
	Family   uint16
	Type     uint16
	Protocol uint16
	State    uint8
	// Hashed says the socket is in its protocol's lookup table, the one
	// sock_diag dumps and /proc/net/{tcp,udp,unix...} print (sk_hashed):
	// a TCP listener or connection, a bound or connected UDP socket, any
	// unix socket. NetNS is the inode of the network namespace it was
	// made in (that table's), which need not be its holder's: a socket
	// passed into a container keeps its own.
	Hashed bool
	NetNS  uint32
}

// recordSize is sizeof(struct sock_rec) in bpf/task_file.bpf.c.
const recordSize = 32

// Iter is a loaded and attached iterator. Each List runs it once. Close
// releases the program; an Iter is not safe for concurrent use.
type Iter struct {
	a    *attached
	buf  []byte
	walk *fdWalk // the fd walk's ring (LoadWalk), nil for the task_file iterator
}

// Why says why the iterator cannot run on this host before trying to load
// it ("" when nothing is known to stop it): Load's errors say the rest.
func Why() string {
	if _, err := os.Stat("/sys/kernel/btf/vmlinux"); err != nil {
		return "the kernel has no BTF (/sys/kernel/btf/vmlinux): the program cannot be relocated to it"
	}
	if b, err := os.ReadFile("/sys/kernel/security/lockdown"); err == nil && strings.Contains(string(b), "[confidentiality]") {
		// security/lockdown/lockdown.c: LOCKDOWN_BPF_READ_KERNEL is
		// above the integrity level.
		return "the kernel is locked down (confidentiality): BPF may not read kernel memory"
	}
	if !sameInitPidNS() {
		return "picket runs in a pid namespace of its own: the iterator's pids are the host's"
	}
	return ""
}

// sameInitPidNS says whether picket sees the initial pid namespace, whose
// pids the iterator reports (task->tgid). PROC_PID_INIT_INO is that
// namespace's inode (include/linux/proc_ns.h).
func sameInitPidNS() bool {
	l, err := os.Readlink("/proc/self/ns/pid")
	if err != nil {
		return false
	}
	return l == "pid:[4026531836]"
}

// Kernel is the running kernel's types, which both programs are relocated
// against. Decoding /sys/kernel/btf/vmlinux (~100,000 types, ~6 MB) is
// most of what a load costs in user space; loads that share a Kernel
// decode it once. Drop it once the programs are loaded: the decoded types
// are several MiB of heap that nothing needs after.
type Kernel struct {
	cache *btf.Cache
}

// NewKernel returns a Kernel that decodes the kernel's BTF at first use.
func NewKernel() *Kernel {
	return &Kernel{cache: btf.NewCache()}
}

// options returns the load options of one collection (nil: its own cache).
func (k *Kernel) options() *ebpf.CollectionOptions {
	if k == nil {
		return nil
	}
	return &ebpf.CollectionOptions{Cache: k.cache}
}

// Load loads and attaches the iterator as o says (relocated against
// o.Kernel, found in or pinned to o.PinDir). The error says what failed:
// no BTF, no privilege (EPERM), a verifier refusal, an old kernel.
func Load(o Options) (*Iter, error) {
	a, err := attach(o, "task_file", "task_sockets", _TaskFileBytes, func(opts *ebpf.CollectionOptions) (*ebpf.Program, interface{ Close() error }, error) {
		var objs taskFileObjects
		if err := loadTaskFileObjects(&objs, opts); err != nil {
			return nil, nil, err
		}
		return objs.TaskSockets, &objs, nil
	})
	if err != nil {
		return nil, err
	}
	return &Iter{a: a, buf: make([]byte, 256<<10)}, nil
}

// How says how the iterator was had: HowLoaded (and why it was not
// pinned, where pinning was asked for), HowPinned or HowReused.
func (it *Iter) How() string { return it.a.how }

// Program names the program: "task_fds" (LoadWalk) or "task_file" (Load).
func (it *Iter) Program() string {
	if it.walk != nil {
		return "task_fds"
	}
	return "task_file"
}

// Pin is the path of the iterator's pin ("" for none).
func (it *Iter) Pin() string { return it.a.pin }

// Close detaches the iterator, and unloads it unless it is pinned.
func (it *Iter) Close() error {
	if it == nil {
		return nil
	}
	if it.walk != nil {
		return errors.Join(it.walk.close(), it.a.close())
	}
	return it.a.close()
}

// FDs is how many fds one process has open (what the stat of /proc/PID/fd
// says since 6.2), and which of its sockets a pass counted rather than
// listed (CountHashed).
type FDs struct {
	PID     int32
	N       int32
	Counted Counts
}

// Counts is how many sockets of a process the fd walk counted by kind
// instead of listing them: those hashed in the host's network namespace
// (Socket.Hashed, NetNS the host's), of family AF_UNIX (any type), or
// AF_INET or AF_INET6 with SOCK_STREAM and IPPROTO_TCP (TCP) or
// SOCK_DGRAM and IPPROTO_UDP (UDP): what the host's sock_diag dumps list.
type Counts struct {
	TCP, UDP, Unix uint32
}

// CountHashed makes the passes that follow count, not list, the sockets
// of the network namespace with inode netns that Counts says, and list
// only the others (0: list every socket again). A caller that learns
// those sockets' kinds and totals from the namespace's own tables (its
// sock_diag dumps) needs no record of each: at 31,000 sockets they were
// nine in ten of a pass's records, ~13 ms of a one-shot's 110 in fresh
// pages and decoding. The task_file iterator (Load) lists every socket
// whatever this says.
func (it *Iter) CountHashed(netns uint32) {
	if it.walk != nil {
		it.walk.netns = netns
	}
}

// List runs the iterator once and appends every socket fd of every process
// to dst, in the kernel's order (by pid, then fd), and every process's
// count of open fds to fds (a process with none is not there). A process
// that exits during the pass is listed up to where the kernel was, or not
// at all.
func (it *Iter) List(ctx context.Context, dst []Socket, fds []FDs) ([]Socket, []FDs, error) {
	if it.walk != nil {
		return it.walk.list(ctx, it.a.link, dst, fds)
	}
	err := readRecords(ctx, it.a.link, it.buf, recordSize, func(b []byte) {
		dst, fds = appendRecord(dst, fds, b)
	})
	if err != nil {
		return dst, fds, fmt.Errorf("read the task_file iterator: %w", err)
	}
	return dst, fds, nil
}

// native is the kernel's (and so the records') byte order.
var native binary.ByteOrder = func() binary.ByteOrder {
	x := uint16(1)
	if *(*byte)(unsafe.Pointer(&x)) == 1 {
		return binary.LittleEndian
	}
	return binary.BigEndian
}()

// appendRecord counts one struct sock_rec's fd in fds (records come by
// pid) and appends its socket to dst when it is one; a struct count_rec
// (the fd walk's counts of a task, after its records) is added to its
// pid's entry.
func appendRecord(dst []Socket, fds []FDs, b []byte) ([]Socket, []FDs) {
	pid := int32(native.Uint32(b[0:]))
	n := len(fds)
	if n == 0 || fds[n-1].PID != pid {
		fds = append(fds, FDs{PID: pid})
		n++
	}
	f := &fds[n-1]
	if b[23]&recCounts != 0 {
		f.N += int32(native.Uint32(b[4:]))
		f.Counted.TCP += native.Uint32(b[8:])
		f.Counted.UDP += native.Uint32(b[12:])
		f.Counted.Unix += native.Uint32(b[16:])
		return dst, fds
	}
	f.N++
	if native.Uint64(b[8:]) != 0 {
		dst = append(dst, decodeSocket(b))
	}
	return dst, fds
}

// Bits of struct sock_rec's flags: SOCK_REC_HASHED, SOCK_REC_COUNTS.
const (
	recHashed = 1
	recCounts = 4
)

// decodeSocket decodes one struct sock_rec.
func decodeSocket(b []byte) Socket {
	return Socket{
		PID:      int32(native.Uint32(b[0:])),
		FD:       int32(native.Uint32(b[4:])),
		Inode:    native.Uint64(b[8:]),
		Family:   native.Uint16(b[16:]),
		Type:     native.Uint16(b[18:]),
		Protocol: native.Uint16(b[20:]),
		State:    b[22],
		Hashed:   b[23]&recHashed != 0,
		NetNS:    native.Uint32(b[24:]),
	}
}
