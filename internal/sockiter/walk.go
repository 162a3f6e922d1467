package sockiter

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"
)

// The fd walk (bpf/task_fds.bpf.c) lists what the task_file iterator lists,
// record for record, in about half its time: it walks each file table
// itself instead of taking a reference on every file. It needs 6.2
// (bpf_rdonly_cast; bpf_loop is 5.17); LoadWalk fails on an older kernel,
// and picket then loads the task_file iterator (Load). Told the host's
// network namespace (Iter.CountHashed), it writes records only of the
// sockets that namespace's tables do not list, and counts the rest.
//
// Its records go to an array map that List maps and reads once the pass
// is over, so the array must hold a whole pass: LoadWalk sizes it for
// twice the host's open files (Options.OpenFiles), at least minRecords,
// and a pass that overflows it fails (ErrWalkFull) rather than report part
// of the host. (A pass that counts writes a record per task with fds and
// per socket in no table of the host's, far fewer than the host's files;
// the size is the one a pass that lists every fd needs.) The array is kernel memory (32 bytes a record, 2 MiB at
// the least), charged to picket's cgroup, for as long as the program is
// loaded or pinned.

const (
	minRecords = 1 << 16
	maxRecords = 1 << 22
)

// ErrWalkFull is a pass that found the fd walk's array of records full.
var ErrWalkFull = errors.New("the fd walk's array of records was full")

// fdWalk is picket's end of a loaded or pinned fd walk: its array of
// records and its globals (next, dropped, host_netns), written before and
// read after each pass.
type fdWalk struct {
	records *ebpf.Map
	bss     *ebpf.Map
	lockDir string // the pin's directory: passes of two processes sharing the pin take turns
	pin     string
	size    int    // records the array holds
	globals []byte // the .bss value (walkGlobals)
	netns   uint32 // host_netns for the next pass (CountHashed)
}

// globalsLayout is where the fd walk's globals are in its .bss, and its
// size.
type globalsLayout struct {
	next, dropped, netns, size uint32
}

// walkGlobals is the layout of the program's .bss.
var walkGlobals = sync.OnceValues(func() (globalsLayout, error) {
	spec, err := loadTaskFds()
	if err != nil {
		return globalsLayout{}, err
	}
	n, d, h := spec.Variables["next"], spec.Variables["dropped"], spec.Variables["host_netns"]
	bss := spec.Maps[".bss"]
	if n == nil || d == nil || h == nil || bss == nil {
		return globalsLayout{}, errors.New("the fd walk's object has no next, dropped and host_netns")
	}
	return globalsLayout{n.Offset, d.Offset, h.Offset, bss.ValueSize}, nil
})

// recordsFor is the array for a host with files open.
func recordsFor(files int) int {
	return min(max(2*files, minRecords), maxRecords)
}

// LoadWalk loads and attaches the fd walk as o says (relocated against
// o.Kernel, found in or pinned to o.PinDir), its array sized for the
// host's open files. Its Iter lists what Load's does.
func LoadWalk(o Options) (*Iter, error) {
	size := o.walkRecords
	if size == 0 {
		size = recordsFor(o.OpenFiles)
	}
	g, err := walkGlobals()
	if err != nil {
		return nil, err
	}
	a, err := attach(o, "fd walk", "task_fds", _TaskFdsBytes, func(opts *ebpf.CollectionOptions) (*ebpf.Program, interface{ Close() error }, error) {
		spec, err := loadTaskFds()
		if err != nil {
			return nil, nil, err
		}
		spec.Maps["records"].MaxEntries = uint32(size)
		spec.Maps["records"].Flags |= unix.BPF_F_MMAPABLE
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
	w.records, w.bss, err = walkMaps(a.link, g.size)
	if err != nil {
		a.close()
		return nil, fmt.Errorf("open the fd walk's maps: %w", err)
	}
	w.size = int(w.records.MaxEntries())
	w.globals = make([]byte, w.bss.ValueSize())
	if a.pin != "" {
		w.lockDir, w.pin = filepath.Dir(a.pin), a.pin
	}
	return &Iter{a: a, walk: w}, nil
}

// walkMaps finds the array of records and the globals of the program the
// iterator runs, loaded here or opened from its pin: its two array maps,
// told apart by their values (a record; the globals, bssSize bytes).
func walkMaps(l *link.Iter, bssSize uint32) (records, bss *ebpf.Map, err error) {
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
		case m.Type() == ebpf.Array && m.ValueSize() == recordSize && m.MaxEntries() > 1 && records == nil:
			records = m
		case m.Type() == ebpf.Array && m.ValueSize() == bssSize && m.MaxEntries() == 1 && bss == nil:
			bss = m
		default:
			m.Close()
		}
	}
	if records == nil || bss == nil {
		records.Close()
		bss.Close()
		return nil, nil, errors.New("the program has no array of records and globals")
	}
	return records, bss, nil
}

func (w *fdWalk) close() error {
	return errors.Join(w.records.Close(), w.bss.Close())
}

// list is Iter.List for the fd walk.
func (w *fdWalk) list(ctx context.Context, l *link.Iter, dst []Socket, fds []FDs) ([]Socket, []FDs, error) {
	if w.lockDir != "" {
		// Every picket on the host runs the pinned program, which writes
		// to one array: two passes at once would mix their records.
		fd, err := unix.Open(w.lockDir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return dst, fds, fmt.Errorf("lock %s: %w", w.lockDir, err)
		}
		defer unix.Close(fd)
		if err := flock(ctx, fd); err != nil {
			return dst, fds, fmt.Errorf("lock %s: %w", w.lockDir, err)
		}
	}
	g, _ := walkGlobals()
	clear(w.globals)
	native.PutUint32(w.globals[g.netns:], w.netns)
	if err := w.bss.Put(uint32(0), w.globals); err != nil {
		return dst, fds, fmt.Errorf("zero the fd walk's counts: %w", err)
	}
	// The iterator's seq_file gets nothing: one read(2) runs the whole
	// pass.
	var none [recordSize]byte
	if err := readRecords(ctx, l, none[:], recordSize, func([]byte) {}); err != nil {
		return dst, fds, fmt.Errorf("run the fd walk: %w", err)
	}
	if err := w.bss.Lookup(uint32(0), w.globals); err != nil {
		return dst, fds, fmt.Errorf("read the fd walk's counts: %w", err)
	}
	next := native.Uint64(w.globals[g.next:])
	if dropped := native.Uint64(w.globals[g.dropped:]); dropped != 0 {
		// The host outgrew the array: the next process to load the
		// walk sizes it anew.
		if w.pin != "" {
			os.Remove(w.pin)
		}
		return dst, fds, fmt.Errorf("%w: %d records past its %d", ErrWalkFull, dropped, w.size)
	}
	if next == 0 {
		return dst, fds, nil
	}
	if next > uint64(w.size) {
		return dst, fds, fmt.Errorf("the fd walk counts %d records in an array of %d", next, w.size)
	}
	// The records are read where the program wrote them, mapped for this
	// pass only: a mapping kept would be the array's size in RSS for
	// good, and BPF_MAP_LOOKUP_BATCH copies them one by one (~6 ms at
	// 40,000).
	n := int(next) * recordSize
	mem, err := unix.Mmap(w.records.FD(), 0, (n+os.Getpagesize()-1)&^(os.Getpagesize()-1), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return dst, fds, fmt.Errorf("map the fd walk's records: %w", err)
	}
	defer unix.Munmap(mem)
	for b := mem[:n]; len(b) >= recordSize; b = b[recordSize:] {
		dst, fds = appendRecord(dst, fds, b)
	}
	return dst, fds, nil
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
