package kmsg

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Start says where in the kernel's buffer a Reader begins
// (Documentation/ABI/testing/dev-kmsg).
type Start int

const (
	// FromFirst begins at the oldest record the buffer still holds: what
	// open(2) gives. picket doctor, picket snapshot and a first picket run
	// read the backlog since boot this way.
	FromFirst Start = iota
	// FromClear begins after the last `dmesg --clear` (SEEK_DATA): what
	// `dmesg` itself would show.
	FromClear
	// FromEnd begins after the last record logged so far (SEEK_END): only
	// what the kernel says from now on.
	FromEnd
)

// errNoRecord is a source's "no record ready" (EAGAIN) when not waiting.
var errNoRecord = errors.New("no record ready")

// source is read(2) on /dev/kmsg: one whole record per call. With wait it
// blocks until a record is ready or ctx is done; without, it returns
// errNoRecord at once. EPIPE (records overwritten since the last read;
// the next read returns the oldest left) and EINVAL (a record longer than
// buf; the kernel skips it) come back as they are.
type source interface {
	read(ctx context.Context, buf []byte, wait bool) (int, error)
	Close() error
}

// Stats counts what reading met, beside the records themselves.
type Stats struct {
	// EPIPE counts reads that found records overwritten (the gap itself
	// is counted from the sequence numbers, by the Log).
	EPIPE uint64
	// TooLong counts records larger than MaxRecord, skipped by the kernel.
	TooLong uint64
}

// Reader reads /dev/kmsg one record at a time. It is not safe for
// concurrent use; Close may be called from another goroutine to end a
// Follow.
type Reader struct {
	src   source
	buf   []byte
	stats Stats
}

// Open opens the kernel log at path ("/dev/kmsg", or ROOT/dev/kmsg). A
// regular file is read as a stream of records in the same format, one
// after another: a fixture tree's log, or a capture of one.
func Open(path string, start Start) (*Reader, error) {
	f, err := os.OpenFile(path, os.O_RDONLY, 0)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if fi.Mode().IsRegular() {
		s := &streamSource{f: f, r: bufio.NewReaderSize(f, MaxRecord+1)}
		if start == FromEnd {
			if _, err := f.Seek(0, io.SeekEnd); err != nil {
				f.Close()
				return nil, err
			}
		}
		return newReader(s), nil
	}
	// The device: os.File puts it in the runtime's poller (it supports
	// poll(2)), so a Reader waiting for the kernel parks a goroutine, not
	// a thread, and costs nothing while the kernel is quiet.
	switch start {
	case FromClear:
		_, err = f.Seek(0, unix.SEEK_DATA)
	case FromEnd:
		_, err = f.Seek(0, io.SeekEnd)
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("seek %s: %w", path, err)
	}
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, err
	}
	return newReader(&deviceSource{f: f, rc: rc}), nil
}

func newReader(s source) *Reader {
	return &Reader{src: s, buf: make([]byte, MaxRecord)}
}

// Stats returns what reading has met so far.
func (r *Reader) Stats() Stats { return r.stats }

// Close releases the device.
func (r *Reader) Close() error { return r.src.Close() }

// next reads one record. EPIPE and EINVAL are counted and read past.
func (r *Reader) next(ctx context.Context, wait bool) ([]byte, error) {
	for {
		n, err := r.src.read(ctx, r.buf, wait)
		switch {
		case err == nil:
			return r.buf[:n], nil
		case errors.Is(err, syscall.EPIPE):
			r.stats.EPIPE++
		case errors.Is(err, syscall.EINVAL):
			r.stats.TooLong++
		default:
			return nil, err
		}
	}
}

// Backlog reads every record the buffer holds now, calling fn with each
// (the slice is reused: copy what is kept), and returns when it has read
// them all.
func (r *Reader) Backlog(ctx context.Context, fn func([]byte)) error {
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		b, err := r.next(ctx, false)
		if errors.Is(err, errNoRecord) {
			return nil
		}
		if err != nil {
			return err
		}
		fn(b)
	}
}

// Follow reads records as the kernel writes them, calling fn with each,
// until ctx is done (it then returns ctx's error). Between records it
// waits in the runtime's poller: no polling loop, no timer. caughtUp, if
// not nil, is called each time the records ready so far have all been
// read, before waiting: the moment to save a position or a summary.
func (r *Reader) Follow(ctx context.Context, fn func([]byte), caughtUp func()) error {
	for {
		b, err := r.next(ctx, false)
		if errors.Is(err, errNoRecord) {
			if caughtUp != nil {
				caughtUp()
			}
			b, err = r.next(ctx, true)
		}
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return err
		}
		fn(b)
	}
}

// deviceSource is /dev/kmsg itself.
type deviceSource struct {
	f  *os.File
	rc syscall.RawConn
}

func (d *deviceSource) read(ctx context.Context, buf []byte, wait bool) (int, error) {
	if wait {
		// The poller ends the wait when ctx is done: a deadline in the
		// past wakes the parked read.
		stop := context.AfterFunc(ctx, func() { d.f.SetReadDeadline(time.Unix(1, 0)) })
		defer stop()
	}
	var n int
	var rerr error
	err := d.rc.Read(func(fd uintptr) bool {
		for {
			n, rerr = unix.Read(int(fd), buf)
			if rerr != unix.EINTR {
				break
			}
		}
		// false: not ready, park until the poller says readable.
		return !(wait && rerr == unix.EAGAIN)
	})
	if err != nil {
		return 0, err
	}
	if rerr == unix.EAGAIN {
		return 0, errNoRecord
	}
	if rerr != nil {
		return 0, &os.PathError{Op: "read", Path: d.f.Name(), Err: rerr}
	}
	return n, nil
}

func (d *deviceSource) Close() error { return d.f.Close() }

// streamSource reads a file of records one after another: a record is its
// header line and the continuation lines (starting with a space) after
// it. At the end of the file there is no record ready; waiting there
// waits for ctx only (a file does not grow into a kernel).
type streamSource struct {
	f *os.File
	r *bufio.Reader
}

func (s *streamSource) read(ctx context.Context, buf []byte, wait bool) (int, error) {
	n, long := 0, false
	for {
		line, err := s.r.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			// A line longer than any record: keep skipping it.
			long = true
			continue
		}
		if n == 0 && !long && len(line) == 1 && line[0] == '\n' {
			continue // a blank line between records
		}
		if n+len(line) > len(buf) {
			long = true
		}
		if !long {
			n += copy(buf[n:], line)
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return 0, err
		}
		if errors.Is(err, io.EOF) && n == 0 && !long {
			if !wait {
				return 0, errNoRecord
			}
			<-ctx.Done()
			return 0, ctx.Err()
		}
		if errors.Is(err, io.EOF) {
			break // a last record cut short: parsed as far as it goes
		}
		if p, err := s.r.Peek(1); err != nil || p[0] != ' ' {
			break
		}
	}
	if long {
		return 0, syscall.EINVAL
	}
	return n, nil
}

func (s *streamSource) Close() error { return s.f.Close() }
