package sockiter

import (
	"context"
	"errors"
	"fmt"
	"math/bits"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/ringbuf"
	"golang.org/x/sys/unix"
)

// The fd walk (bpf/task_fds.bpf.c) lists what the task_file iterator lists,
// record for record, in about half its time: it walks each file table
// itself instead of taking a reference on every file. It needs 6.2
// (bpf_rdonly_cast; bpf_loop is 5.17, the ring buffer 5.8); LoadWalk fails
// on an older kernel, and picket then loads the task_file iterator (Load).
//
// Its records go to a ring buffer that List drains once the pass is over,
// so the ring must hold a whole pass: LoadWalk sizes it after the host's
// open files (the first field of /proc/sys/fs/file-nr), at least
// minRingBytes, and a pass that overflows it fails (ErrRingFull) rather
// than report part of the host. The ring is kernel memory, charged to
// picket's cgroup, for as long as the program is loaded or pinned.

const (
	minRingBytes = 4 << 20
	maxRingBytes = 256 << 20
	// ringRecordBytes is what one fd costs in the ring, with room for
	// the host to double its files before the program is loaded again:
	// 24 bytes a record, an 8-byte header per batch of up to 64.
	ringRecordBytes = 2 * (recordSize + 8)
)

// ErrRingFull is a pass that found the fd walk's ring buffer full.
var ErrRingFull = errors.New("the fd walk's ring buffer was full")

// fdWalk is the ring buffer's end of a loaded or pinned fd walk.
type fdWalk struct {
	ring    *ebpf.Map
	bss     *ebpf.Map // the program's globals: dropped
	reader  *ringbuf.Reader
	lockDir string // the pin's directory: passes of two processes sharing the pin take turns
	pin     string
	bytes   int
}

// ringSize is the ring for a host with files open: a power of two of pages
// (what BPF_MAP_TYPE_RINGBUF takes).
func ringSize(files int) int {
	n := max(files*ringRecordBytes, minRingBytes)
	n = 1 << bits.Len(uint(n-1))
	return min(n, maxRingBytes)
}

// LoadWalk loads and attaches the fd walk as o says (relocated against
// o.Kernel, found in or pinned to o.PinDir), its ring sized for the host's
// files now. Its Iter lists what Load's does.
func LoadWalk(o Options) (*Iter, error) {
	size := o.ringBytes
	if size == 0 {
		size = ringSize(filesInUse())
	}
	a, err := attach(o, "fd walk", "task_fds", _TaskFdsBytes, func(opts *ebpf.CollectionOptions) (*ebpf.Program, interface{ Close() error }, error) {
		spec, err := loadTaskFds()
		if err != nil {
			return nil, nil, err
		}
		spec.Maps["records"].MaxEntries = uint32(size)
		objs := new(taskFdsObjects)
		if opts == nil {
			opts = &ebpf.CollectionOptions{}
		}
		if err := spec.LoadAndAssign(objs, opts); err != nil {
			return nil, nil, err
		}
		return objs.TaskFds, objs, nil
	})
	if err != nil {
		return nil, err
	}
	w := &fdWalk{}
	w.ring, w.bss, err = walkMaps(a.link)
	if err == nil {
		w.reader, err = ringbuf.NewReader(w.ring)
	}
	if err != nil {
		w.close()
		a.close()
		return nil, fmt.Errorf("open the fd walk's ring buffer: %w", err)
	}
	w.bytes = w.reader.BufferSize()
	if a.pin != "" {
		w.lockDir, w.pin = filepath.Dir(a.pin), a.pin
	}
	return &Iter{a: a, walk: w}, nil
}

// walkMaps finds the ring buffer and the globals of the program the
// iterator runs, loaded here or opened from its pin: its maps, by type
// (the program has one ring, one array and one per-CPU array).
func walkMaps(l *link.Iter) (ring, bss *ebpf.Map, err error) {
	info, err := l.Info()
	if err != nil {
		return nil, nil, err
	}
	p, err := ebpf.NewProgramFromID(info.Program)
	if err != nil {
		return nil, nil, err
	}
	defer p.Close()
	pi, err := p.Info()
	if err != nil {
		return nil, nil, err
	}
	ids, _ := pi.MapIDs()
	for _, id := range ids {
		m, err := ebpf.NewMapFromID(id)
		if err != nil {
			continue
		}
		switch {
		case m.Type() == ebpf.RingBuf && ring == nil:
			ring = m
		case m.Type() == ebpf.Array && m.ValueSize() == 8 && bss == nil:
			bss = m
		default:
			m.Close()
		}
	}
	if ring == nil || bss == nil {
		ring.Close()
		bss.Close()
		return nil, nil, errors.New("the pinned program has no ring buffer and globals")
	}
	return ring, bss, nil
}

func (w *fdWalk) close() error {
	var err error
	if w.reader != nil {
		err = w.reader.Close()
	}
	if w.ring != nil {
		err = errors.Join(err, w.ring.Close())
	}
	if w.bss != nil {
		err = errors.Join(err, w.bss.Close())
	}
	return err
}

// list is Iter.List for the fd walk.
func (w *fdWalk) list(ctx context.Context, l *link.Iter, dst []Socket, fds []FDs) ([]Socket, []FDs, error) {
	if w.lockDir != "" {
		// Every picket on the host runs the pinned program, which writes
		// to one ring: two passes at once would drain each other's
		// records.
		fd, err := unix.Open(w.lockDir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return dst, fds, fmt.Errorf("lock %s: %w", w.lockDir, err)
		}
		defer unix.Close(fd)
		if err := flock(ctx, fd); err != nil {
			return dst, fds, fmt.Errorf("lock %s: %w", w.lockDir, err)
		}
	}
	// What a pass killed before it drained left in the ring is not this
	// pass's.
	if err := w.drain(func([]byte) {}); err != nil {
		return dst, fds, err
	}
	if err := w.bss.Put(uint32(0), uint64(0)); err != nil {
		return dst, fds, fmt.Errorf("reset the fd walk's count of drops: %w", err)
	}
	// The iterator's seq_file gets nothing: one read(2) runs the whole
	// pass.
	var none [recordSize]byte
	if err := readRecords(ctx, l, none[:], recordSize, func([]byte) {}); err != nil {
		return dst, fds, fmt.Errorf("run the fd walk: %w", err)
	}
	err := w.drain(func(b []byte) {
		for ; len(b) >= recordSize; b = b[recordSize:] {
			pid := int32(native.Uint32(b[0:]))
			if n := len(fds); n > 0 && fds[n-1].PID == pid {
				fds[n-1].N++
			} else {
				fds = append(fds, FDs{PID: pid, N: 1})
			}
			if native.Uint64(b[8:]) != 0 {
				dst = append(dst, decodeSocket(b))
			}
		}
	})
	if err != nil {
		return dst, fds, err
	}
	var dropped uint64
	if err := w.bss.Lookup(uint32(0), &dropped); err != nil {
		return dst, fds, fmt.Errorf("read the fd walk's count of drops: %w", err)
	}
	if dropped != 0 {
		// The host outgrew the ring: the next process to load the walk
		// sizes it anew.
		if w.pin != "" {
			os.Remove(w.pin)
		}
		return dst, fds, fmt.Errorf("%w: %d records of %d MiB dropped", ErrRingFull, dropped, w.bytes>>20)
	}
	return dst, fds, nil
}

// drain hands fn every record batch in the ring until it is empty.
func (w *fdWalk) drain(fn func([]byte)) error {
	w.reader.SetDeadline(time.Now())
	var rec ringbuf.Record
	for {
		if err := w.reader.ReadInto(&rec); err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				return nil
			}
			return fmt.Errorf("read the fd walk's ring buffer: %w", err)
		}
		fn(rec.RawSample)
	}
}

// flock takes an exclusive lock on fd, waiting for ctx at most.
func flock(ctx context.Context, fd int) error {
	for {
		err := unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB)
		if !errors.Is(err, unix.EWOULDBLOCK) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Millisecond):
		}
	}
}

// filesInUse is the host's count of open files (0 when unknown).
func filesInUse() int {
	b, err := os.ReadFile("/proc/sys/fs/file-nr")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	n, _ := strconv.Atoi(f[0])
	return n
}
