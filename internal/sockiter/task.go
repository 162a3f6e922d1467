package sockiter

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
)

// MaxCgroups is how many hierarchies a Task's cgroups are read from
// (MAX_CGROUPS in bpf/task.bpf.c): a task in more has the rest left out,
// and Cgroups says so.
const MaxCgroups = 16

// Task is one process (thread-group leader) as the task iterator saw it:
// what /proc/PID/stat, status and cgroup say of it, unformatted.
type Task struct {
	PID  int32 // tgid, in the initial pid namespace
	PPID int32 // the parent's tgid; 0 for pid 1 and 2 and a task being reaped
	// UID and GID are the real ids, EUID and EGID the effective ones
	// (status's Uid: and Gid: lines), in the initial user namespace.
	UID, EUID, GID, EGID uint32
	// StartBoottime is when the process started, in ns since boot
	// (suspend included): task->start_boottime. StartTicks is it as
	// stat's starttime.
	StartBoottime uint64
	RSSPages      uint64 // stat's rss: file, anon and shmem pages
	VMPages       uint64 // stat's vsize, in pages (mm->total_vm)
	// RawState and ExitState are task->__state and ->exit_state; State
	// is the letter stat prints.
	RawState, ExitState uint32
	Flags               uint32 // PF_*
	Threads             int32  // stat's num_threads
	NetNS               uint32 // the inode of /proc/PID/ns/net; 0 when it has none (exiting)
	comm                [16]byte
	// NCgroups is how many of CgroupID and Hierarchy are set: one per
	// hierarchy the kernel has, the unified one (hierarchy 0) included.
	NCgroups  int
	CgroupID  [MaxCgroups]uint64 // the inode of the cgroup's directory in its hierarchy
	Hierarchy [MaxCgroups]uint8  // the first field of /proc/PID/cgroup's line for it
}

// taskRecordSize is sizeof(struct task_rec) in bpf/task.bpf.c.
const taskRecordSize = 232

// Comm is the task's name (task->comm), at most 15 bytes. It is what
// stat prints, except for a kernel thread whose name is longer
// (get_kthread_comm) or a workqueue worker's ("kworker/0:1-events",
// wq_worker_comm): CommComplete says whether it is.
func (t *Task) Comm() []byte {
	if i := bytes.IndexByte(t.comm[:], 0); i >= 0 {
		return t.comm[:i]
	}
	return t.comm[:]
}

// PF_* flags (include/linux/sched.h).
const (
	pfExiting  = 0x00000004
	pfWQWorker = 0x00000020
	pfKthread  = 0x00200000
)

// KernelThread says whether the task is a kernel thread (PF_KTHREAD).
func (t *Task) KernelThread() bool { return t.Flags&pfKthread != 0 }

// Exiting says whether the task has begun to exit (PF_EXITING, set by
// exit_signals in do_exit): a zombie, or a process on its way to being one.
func (t *Task) Exiting() bool { return t.Flags&pfExiting != 0 }

// CommComplete says whether Comm is all of what /proc/PID/stat prints
// (proc_task_name, fs/proc/array.c): a kernel thread's full name may be
// longer than task->comm, and a workqueue worker's has what it works for
// appended.
func (t *Task) CommComplete() bool {
	if !t.KernelThread() {
		return true
	}
	return t.Flags&pfWQWorker == 0 && len(t.Comm()) < len(t.comm)-1
}

// userHZ is the unit of stat's times (USER_HZ, include/asm-generic/param.h).
const userHZ = 100

// StartTicks is the start time as stat's starttime prints it: in clock
// ticks since boot (nsec_to_clock_t, kernel/time/time.c).
func (t *Task) StartTicks() uint64 { return t.StartBoottime / (1e9 / userHZ) }

// The task state bits of include/linux/sched.h (since 6.1, TASK_FROZEN).
const (
	taskReport      = 0x7f // TASK_RUNNING .. TASK_PARKED: TASK_REPORT
	taskNoLoad      = 0x0400
	taskIdle        = 0x0002 | taskNoLoad // TASK_UNINTERRUPTIBLE | TASK_NOLOAD
	taskReportIdle  = taskReport + 1
	taskRTLockWait  = 0x1000
	taskFrozen      = 0x8000
	taskUninterrupt = 0x0002
)

// State is the letter stat prints: task_state_array[task_state_index()]
// (fs/proc/array.c, include/linux/sched.h).
func (t *Task) State() byte {
	s := (t.RawState | t.ExitState) & taskReport
	if t.RawState&taskIdle == taskIdle {
		s = taskReportIdle
	}
	if t.RawState&(taskRTLockWait|taskFrozen) != 0 {
		s = taskUninterrupt
	}
	// fls: the index of the highest bit set, 1-based; 0 for none.
	i := 0
	for s != 0 {
		i++
		s >>= 1
	}
	return "RSDTtXZPI"[i]
}

// Cgroups says whether every hierarchy's cgroup was read: a task in more
// than MaxCgroups hierarchies has some left out.
func (t *Task) Cgroups() bool { return t.NCgroups < MaxCgroups }

// Tasks is a loaded and attached task iterator. Each List runs it once.
// Close releases the program; Tasks is not safe for concurrent use.
type Tasks struct {
	a   *attached
	buf []byte
}

// LoadTasks loads and attaches the task iterator as o says. It needs what
// Load needs, and a kernel of 6.2 or later (whose mm_struct counts rss in
// percpu_counters): on an older one the relocation fails and the error
// says so.
func LoadTasks(o Options) (*Tasks, error) {
	a, err := attach(o, "task", "task_info", _TaskBytes, func(opts *ebpf.CollectionOptions) (*ebpf.Program, interface{ Close() error }, error) {
		var objs taskObjects
		if err := loadTaskObjects(&objs, opts); err != nil {
			return nil, nil, err
		}
		return objs.TaskInfo, &objs, nil
	})
	if err != nil {
		return nil, err
	}
	return &Tasks{a: a, buf: make([]byte, 256*taskRecordSize)}, nil
}

// How says how the iterator was had (see Iter.How).
func (t *Tasks) How() string { return t.a.how }

// Pin is the path of the iterator's pin ("" for none).
func (t *Tasks) Pin() string { return t.a.pin }

// Close detaches the iterator, and unloads it unless it is pinned.
func (t *Tasks) Close() error {
	if t == nil {
		return nil
	}
	return t.a.close()
}

// List runs the iterator once and appends every process to dst, in the
// kernel's order (by pid). A process that exits during the pass is listed
// or not.
func (t *Tasks) List(ctx context.Context, dst []Task) ([]Task, error) {
	err := readRecords(ctx, t.a.link, t.buf, taskRecordSize, func(b []byte) {
		dst = append(dst, decodeTask(b))
	})
	if err != nil {
		return dst, fmt.Errorf("read the task iterator: %w", err)
	}
	return dst, nil
}

// decodeTask decodes one struct task_rec.
func decodeTask(b []byte) Task {
	t := Task{
		PID:           int32(native.Uint32(b[0:])),
		PPID:          int32(native.Uint32(b[4:])),
		UID:           native.Uint32(b[8:]),
		EUID:          native.Uint32(b[12:]),
		GID:           native.Uint32(b[16:]),
		EGID:          native.Uint32(b[20:]),
		StartBoottime: native.Uint64(b[24:]),
		RSSPages:      native.Uint64(b[32:]),
		VMPages:       native.Uint64(b[40:]),
		RawState:      native.Uint32(b[48:]),
		ExitState:     native.Uint32(b[52:]),
		Flags:         native.Uint32(b[56:]),
		Threads:       int32(native.Uint32(b[60:])),
		NetNS:         native.Uint32(b[64:]),
		NCgroups:      int(min(native.Uint32(b[68:]), MaxCgroups)),
	}
	copy(t.comm[:], b[72:88])
	for i := range t.NCgroups {
		t.CgroupID[i] = native.Uint64(b[88+8*i:])
		t.Hierarchy[i] = b[88+8*MaxCgroups+i]
	}
	return t
}

// readRecords reads one pass of the iterator l through buf and calls fn
// with each record of size bytes. The kernel writes whole records into
// its seq_file buffer and hands out as much of it as read asks for: a
// record can straddle two reads.
func readRecords(ctx context.Context, l *link.Iter, buf []byte, size int, fn func([]byte)) error {
	r, err := l.Open()
	if err != nil {
		return fmt.Errorf("open: %w", err)
	}
	defer r.Close()
	var carry int
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		n, err := r.Read(buf[carry:])
		n += carry
		full := n - n%size
		for b := buf[:full]; len(b) >= size; b = b[size:] {
			fn(b[:size])
		}
		carry = copy(buf, buf[full:n])
		if errors.Is(err, io.EOF) {
			if carry != 0 {
				return fmt.Errorf("%d bytes of a record left over", carry)
			}
			return nil
		}
		if err != nil {
			return err
		}
	}
}
