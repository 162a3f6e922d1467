package kmsg

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/picket-guard/picket/internal/snapshot"
	"github.com/picket-guard/picket/internal/testkit/kerneltest"
)

// ringDevice behaves as /dev/kmsg does for one reader (devkmsg_read() in
// kernel/printk/printk.c): each read returns the record at the reader's
// position; when that record was overwritten, read fails with EPIPE once
// and moves the position to the oldest record left; a record longer than
// the buffer fails with EINVAL and is skipped.
type ringDevice struct {
	mu     sync.Mutex
	recs   []string // held by the "kernel": recs[i] has sequence first+i
	first  uint64
	pos    uint64
	wake   chan struct{}
	closed bool
}

func newRingDevice() *ringDevice { return &ringDevice{wake: make(chan struct{}, 1)} }

// log appends a record as the kernel would, dropping the oldest beyond keep.
func (d *ringDevice) log(text string, keep int) {
	d.mu.Lock()
	seq := d.first + uint64(len(d.recs))
	d.recs = append(d.recs, fmt.Sprintf("6,%d,%d,-;%s\n", seq, seq*1000, text))
	for len(d.recs) > keep {
		d.recs = d.recs[1:]
		d.first++
	}
	d.mu.Unlock()
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

func (d *ringDevice) read(ctx context.Context, buf []byte, wait bool) (int, error) {
	for {
		d.mu.Lock()
		if d.pos < d.first {
			d.pos = d.first
			d.mu.Unlock()
			return 0, syscall.EPIPE
		}
		if i := d.pos - d.first; i < uint64(len(d.recs)) {
			r := d.recs[i]
			d.pos++
			d.mu.Unlock()
			if len(r) > len(buf) {
				return 0, syscall.EINVAL
			}
			return copy(buf, r), nil
		}
		d.mu.Unlock()
		if !wait {
			return 0, errNoRecord
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-d.wake:
		}
	}
}

func (d *ringDevice) Close() error { d.closed = true; return nil }

func TestReaderEPIPEGap(t *testing.T) {
	d := newRingDevice()
	r := newReader(d)
	l := NewLog(Options{Boot: boot, FromFirst: true})
	d.log("TCP: too many orphaned sockets", 4)
	if err := l.ReadBacklog(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	// Ten records while the reader was away; the buffer keeps four.
	for i := 0; i < 10; i++ {
		d.log(fmt.Sprintf("cgroup: fork rejected by pids controller in /cg%d", i), 4)
	}
	if err := l.ReadBacklog(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	s := l.Summary(boot.Add(time.Minute))
	if r.Stats().EPIPE != 1 || s.Lost != 6 {
		t.Errorf("EPIPE %d, lost %d: want 1 and 6 (seq 1..6 overwritten)", r.Stats().EPIPE, s.Lost)
	}
	k := s.Kind(KindForkRejected)
	if k.Count != 4 || k.Recent[0].Fields.Cgroup != "/cg6" {
		t.Errorf("after the gap: %+v", k)
	}
	if s.Kind(KindTCPOrphans).Count != 1 || s.NextSeq != 11 {
		t.Errorf("before the gap: %+v, next %d", s.Kind(KindTCPOrphans), s.NextSeq)
	}
}

func TestReaderTooLong(t *testing.T) {
	d := newRingDevice()
	d.log("VFS: file-max limit 10 reached", 10)
	d.log(strings.Repeat("x", MaxRecord), 10)
	d.log("VFS: file-max limit 20 reached", 10)
	r := newReader(d)
	l := NewLog(Options{Boot: boot})
	if err := l.ReadBacklog(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	s := l.Summary(boot)
	if s.TooLong != 1 || s.Kind(KindFileMax).Count != 2 || s.Lost != 1 {
		// The kernel skips the long record, so its sequence number is a gap too.
		t.Errorf("too long %d, file-max %d, lost %d", s.TooLong, s.Kind(KindFileMax).Count, s.Lost)
	}
}

// Follow hands each message over as the kernel logs it, and stops when its
// context is done.
func TestReaderFollow(t *testing.T) {
	d := newRingDevice()
	d.log("an old message", 100)
	r := newReader(d)
	l := NewLog(Options{Boot: boot})
	got := make(chan snapshot.KernelMessage, 10)
	caught := make(chan struct{}, 10)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() {
		done <- l.Follow(ctx, r, func(m snapshot.KernelMessage) { got <- m }, func() { caught <- struct{}{} })
	}()
	<-caught
	d.log("cgroup: fork rejected by pids controller in /live", 100)
	select {
	case m := <-got:
		if m.Fields.Cgroup != "/live" {
			t.Errorf("followed %+v", m)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("message not followed")
	}
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Follow returned %v, want context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Follow did not stop")
	}
	if s := l.Summary(boot); s.Mode != "follow" || s.Records != 2 {
		t.Errorf("summary %+v", s)
	}
}

func TestStreamOverLong(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kmsg")
	data := "6,1,1,-;VFS: file-max limit 10 reached\n" +
		"6,2,2,-;" + strings.Repeat("y", 3*MaxRecord) + "\n" +
		"6,3,3,-;a record with a long continuation\n " + strings.Repeat("D", MaxRecord) + "\n" +
		"\n" +
		"6,4,4,-;VFS: file-max limit 20 reached\n" +
		"6,5,5,-;cgroup: fork rejected by pids controller in /cut-sho"
	os.WriteFile(path, []byte(data), 0o600)
	r, err := Open(path, FromFirst)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	l := NewLog(Options{Boot: boot})
	if err := l.ReadBacklog(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	s := l.Summary(boot)
	if s.TooLong != 2 || s.Kind(KindFileMax).Count != 2 || s.Malformed != 0 {
		t.Errorf("too long %d, file-max %d, malformed %d", s.TooLong, s.Kind(KindFileMax).Count, s.Malformed)
	}
	if k := s.Kind(KindForkRejected); k.Count != 1 || k.Fields.Cgroup != "/cut-sho" {
		t.Errorf("the last record, cut short: %+v", k)
	}

	// From the end of a file: nothing.
	r2, err := Open(path, FromEnd)
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	n := 0
	r2.Backlog(context.Background(), func([]byte) { n++ })
	if n != 0 {
		t.Errorf("FromEnd read %d records", n)
	}
}

// The real device: the backlog ends, FromEnd starts empty, and a Follow
// parked on a quiet kernel stops at once when its context is done.
func TestDevice(t *testing.T) {
	kerneltest.RequireRoot(t)
	r, err := Open("/dev/kmsg", FromFirst)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	n := 0
	var first Record
	if err := r.Backlog(context.Background(), func(b []byte) {
		if n == 0 {
			first, _ = ParseRecord(append([]byte(nil), b...))
		}
		n++
	}); err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Fatal("no record in the kernel's buffer")
	}
	t.Logf("backlog: %d records, the first seq %d", n, first.Seq)

	for _, start := range []Start{FromClear, FromEnd} {
		r2, err := Open("/dev/kmsg", start)
		if err != nil {
			t.Fatal(err)
		}
		m := 0
		r2.Backlog(context.Background(), func([]byte) { m++ })
		r2.Close()
		if start == FromEnd && m > 2 { // a record or two may come in between
			t.Errorf("FromEnd read %d records", m)
		}
		if m > n+10 {
			t.Errorf("start %d read %d records, more than the buffer's %d", start, m, n)
		}
	}

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- r.Follow(ctx, func([]byte) {}, nil) }()
	time.Sleep(100 * time.Millisecond)
	t0 := time.Now()
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Follow returned %v", err)
		}
		t.Logf("Follow stopped %v after its context", time.Since(t0))
	case <-time.After(3 * time.Second):
		t.Fatal("Follow on /dev/kmsg did not stop with its context")
	}
}

// countingSource counts the reads made on a source.
type countingSource struct {
	source
	reads, records atomic.Int64
}

func (c *countingSource) read(ctx context.Context, buf []byte, wait bool) (int, error) {
	c.reads.Add(1)
	n, err := c.source.read(ctx, buf, wait)
	if err == nil {
		c.records.Add(1)
	}
	return n, err
}

// Following a quiet kernel is one read parked in the poller: no polling
// loop, no timer. Every read but the parked one returns a record.
func TestDeviceQuietNoPolling(t *testing.T) {
	kerneltest.RequireRoot(t)
	r, err := Open("/dev/kmsg", FromEnd)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	c := &countingSource{source: r.src}
	r.src = c
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- r.Follow(ctx, func([]byte) {}, nil) }()
	time.Sleep(time.Second)
	cancel()
	<-done
	reads, recs := c.reads.Load(), c.records.Load()
	t.Logf("1 s of following: %d reads, %d records", reads, recs)
	// Per record one read; per time caught up one read returning EAGAIN
	// and one parked (which ends with the context).
	if reads > 3*recs+2 {
		t.Errorf("%d reads for %d records in a second: the follower polls", reads, recs)
	}
}
