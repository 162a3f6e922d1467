package kmsg

import (
	"context"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/picket-guard/picket/internal/snapshot"
)

// maxText is how much of a message is kept: the kernel's messages the
// catalogue knows are all shorter; anything longer is cut.
const maxText = 512

// oomContextSpan is how many records after the OOM killer's summary line
// its "Killed process" line may come (it is the next one on every kernel
// that prints both).
const oomContextSpan = 8

// hourSlots are the minutes counted for "the last hour": the current one
// and the 60 before it, so a message 59 minutes and 59 seconds old is
// never left out (one up to 61 minutes old may be counted).
const hourSlots = 61

// Options configure a Log.
type Options struct {
	// Boot is the wall-clock time the host booted (btime in /proc/stat):
	// a record's time is Boot plus its timestamp.
	Boot time.Time
	// BootID is /proc/sys/kernel/random/boot_id, kept with the state.
	BootID string
	// Ring is how many messages are kept per kind, and of userspace's
	// (default 8).
	Ring int
	// FromFirst says reading begins at the buffer's oldest record, so the
	// records before the first one read were overwritten: they count as
	// lost. Not so when reading from the end or after a clear.
	FromFirst bool
	// Source names what is read, for the summary ("/dev/kmsg").
	Source string
}

// Log is what the kernel said, in bounded memory: per kind a count since
// boot, the counts of the last 60 minutes, and a ring of the last few
// messages; of unknown messages only counts. It is safe for concurrent
// use (a follower adds while the collection loop summarizes).
type Log struct {
	mu    sync.Mutex
	opts  Options
	mode  string
	kinds []kindState // by kind, in catalogue order
	user  ring

	started   bool
	resumed   uint64
	next      uint64
	records   uint64
	lost      uint64
	malformed uint64
	tooLong   uint64
	unknown   uint64
	unknownE  uint64
	userCount uint64
	// ctx is the OOM killer's last summary line, waiting for the kill
	// line it details.
	ctx    snapshot.KernelFields
	ctxSeq uint64
	ctxSet bool
	// pend is a line the kernel left open (flag c), joined with the
	// records flagged + after it.
	pendRec  Record
	pendText []byte
	pendSet  bool
	out      []snapshot.KernelMessage
	err      string
}

type kindState struct {
	entry   *Entry // the first entry of the kind: its findings and source
	count   uint64
	first   time.Time
	last    time.Time
	recent  ring
	minutes [hourSlots]minuteCount
}

// minuteCount is the messages of one minute (Unix time / 60).
type minuteCount struct {
	Minute int64  `json:"minute"`
	N      uint32 `json:"n"`
}

// ring keeps the last cap messages.
type ring struct {
	buf  []snapshot.KernelMessage
	head int // the oldest, once full
	size int
}

func newRing(n int) ring { return ring{buf: make([]snapshot.KernelMessage, 0, n), size: n} }

func (r *ring) push(m snapshot.KernelMessage) {
	if len(r.buf) < r.size {
		r.buf = append(r.buf, m)
		return
	}
	r.buf[r.head] = m
	r.head = (r.head + 1) % r.size
}

// list returns the messages oldest first, in a new slice.
func (r *ring) list() []snapshot.KernelMessage {
	out := make([]snapshot.KernelMessage, 0, len(r.buf))
	out = append(out, r.buf[r.head:]...)
	return append(out, r.buf[:r.head]...)
}

// NewLog returns an empty Log.
func NewLog(opts Options) *Log {
	if opts.Ring <= 0 {
		opts.Ring = 8
	}
	if opts.Source == "" {
		opts.Source = "/dev/kmsg"
	}
	l := &Log{opts: opts, mode: "backlog", user: newRing(opts.Ring)}
	for i := range catalogue {
		e := &catalogue[i]
		if n := len(l.kinds); n > 0 && l.kinds[n-1].entry.Kind == e.Kind {
			if l.kinds[n-1].entry.context {
				l.kinds[n-1].entry = e // the message itself, not its summary line
			}
			continue
		}
		l.kinds = append(l.kinds, kindState{entry: e, recent: newRing(opts.Ring)})
	}
	return l
}

func (l *Log) kind(name string) *kindState {
	for i := range l.kinds {
		if l.kinds[i].entry.Kind == name {
			return &l.kinds[i]
		}
	}
	return nil
}

// Add reads one record as read(2) returned it, and calls emit (if not
// nil) with each message of a known kind it completes: the kernel's word,
// seen for the first time (a record already counted, before a restart,
// is not counted again). Userspace's records, unknown messages and the
// OOM killer's summary line (which joins the kill line after it) are not
// emitted. emit runs after the Log is unlocked: it may call Summary.
func (l *Log) Add(b []byte, emit func(snapshot.KernelMessage)) {
	rec, err := ParseRecord(b)
	l.mu.Lock()
	out := l.add(&rec, err)
	l.mu.Unlock()
	l.emit(out, emit)
}

// Flush completes a line the kernel left open (flag c) and still holds:
// call it when the records ready are all read.
func (l *Log) Flush(emit func(snapshot.KernelMessage)) {
	l.mu.Lock()
	l.out = l.out[:0]
	l.flushLocked()
	out := l.out
	l.mu.Unlock()
	l.emit(out, emit)
}

func (l *Log) emit(out []snapshot.KernelMessage, emit func(snapshot.KernelMessage)) {
	if emit == nil {
		return
	}
	for _, m := range out {
		emit(m)
	}
}

// add does Add's work under the lock; the messages completed are in l.out
// until the next call.
func (l *Log) add(rec *Record, err error) []snapshot.KernelMessage {
	l.out = l.out[:0]
	if err != nil {
		l.malformed++
		return nil
	}
	switch {
	case !l.started:
		if l.opts.FromFirst {
			l.lost += rec.Seq
		}
		l.started = true
	case rec.Seq < l.next:
		return nil // counted before
	case rec.Seq > l.next:
		l.lost += rec.Seq - l.next
	}
	l.next = rec.Seq + 1
	if !rec.FromKernel() {
		l.userCount++
		l.user.push(l.message(rec, "", snapshot.KernelFields{}))
		return nil
	}
	l.records++
	// Kernels before 4.9 may store a line printed in pieces (pr_cont) as
	// a record flagged c and records flagged + after it: the pids
	// controller's cgroup path is such a piece. They are joined.
	switch rec.Flags {
	case '+':
		if l.pendSet {
			room := MaxRecord - len(l.pendText)
			l.pendText = append(l.pendText, rec.Text[:min(len(rec.Text), max(room, 0))]...)
			return nil
		}
	case 'c':
		l.flushLocked()
		l.pendRec, l.pendSet = *rec, true
		l.pendRec.Subsystem, l.pendRec.Device = nil, nil // they point into the read buffer
		l.pendText = append(l.pendText[:0], rec.Text...)
		return l.out
	default:
		l.flushLocked()
	}
	l.classify(rec)
	return l.out
}

func (l *Log) flushLocked() {
	if !l.pendSet {
		return
	}
	l.pendSet = false
	rec := l.pendRec
	rec.Text = l.pendText
	l.classify(&rec)
}

// classify files a kernel message under its kind, or counts it unknown.
func (l *Log) classify(rec *Record) {
	e, f, ok := Match(rec.Text)
	if !ok {
		l.unknown++
		if rec.Level <= 3 {
			l.unknownE++
		}
		return
	}
	if e.context {
		l.ctx, l.ctxSeq, l.ctxSet = f, rec.Seq, true
		return
	}
	if e.Kind == KindOOMKill && l.ctxSet {
		if l.ctx.PID == f.PID && rec.Seq-l.ctxSeq <= oomContextSpan {
			f.Cgroup, f.OOMCgroup, f.Constraint = l.ctx.Cgroup, l.ctx.OOMCgroup, l.ctx.Constraint
			f.Memcg = f.Memcg || l.ctx.Memcg
			if f.UID == nil {
				f.UID = l.ctx.UID
			}
		}
		l.ctxSet = false
	}
	m := l.message(rec, e.Kind, f)
	k := l.kind(e.Kind)
	k.count++
	if k.first.IsZero() || m.Time.Before(k.first) {
		k.first = m.Time
	}
	if m.Time.After(k.last) {
		k.last = m.Time
	}
	k.recent.push(m)
	min := m.Time.Unix() / 60
	slot := &k.minutes[uint64(min)%hourSlots]
	if slot.Minute != min {
		*slot = minuteCount{Minute: min}
	}
	slot.N++
	l.out = append(l.out, m)
}

func (l *Log) message(rec *Record, kind string, f snapshot.KernelFields) snapshot.KernelMessage {
	text := rec.Text
	if len(text) > maxText {
		text = text[:maxText]
	}
	m := snapshot.KernelMessage{
		Seq: rec.Seq, Facility: rec.Facility, Level: rec.Level, Kind: kind,
		Text: string(text), Subsystem: string(rec.Subsystem), Device: string(rec.Device), Fields: f,
	}
	if !l.opts.Boot.IsZero() {
		m.Time = l.opts.Boot.Add(rec.TS).UTC().Truncate(time.Millisecond)
	}
	return m
}

// Fail records why the log could not be read (or stopped being read).
func (l *Log) Fail(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err == nil {
		l.err = ""
		return
	}
	l.err = err.Error()
}

// addStats adds a reader's skipped records.
func (l *Log) addStats(before, after Stats) {
	l.mu.Lock()
	l.tooLong += after.TooLong - before.TooLong
	l.mu.Unlock()
}

// ReadBacklog reads every record r has now into the Log.
func (l *Log) ReadBacklog(ctx context.Context, r *Reader) error {
	st := r.Stats()
	defer func() { l.addStats(st, r.Stats()) }()
	err := r.Backlog(ctx, func(b []byte) { l.Add(b, nil) })
	l.Flush(nil)
	return err
}

// Follow reads r into the Log until ctx is done, calling onMessage (if
// not nil) with each message of a known kind as it comes and caughtUp (if
// not nil) whenever the records ready so far are all read.
func (l *Log) Follow(ctx context.Context, r *Reader, onMessage func(snapshot.KernelMessage), caughtUp func()) error {
	l.mu.Lock()
	l.mode = "follow"
	l.mu.Unlock()
	st := r.Stats()
	return r.Follow(ctx, func(b []byte) { l.Add(b, onMessage) }, func() {
		l.Flush(onMessage)
		now := r.Stats()
		l.addStats(st, now)
		st = now
		if caughtUp != nil {
			caughtUp()
		}
	})
}

// Summary is the Log as the snapshot shows it, the last hour counted back
// from now.
func (l *Log) Summary(now time.Time) *snapshot.KernelLog {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := &snapshot.KernelLog{
		Source: l.opts.Source, Mode: l.mode, Available: l.err == "", Error: l.err, BootID: l.opts.BootID,
		NextSeq: l.next, ResumedSeq: l.resumed, Records: l.records, Lost: l.lost, Malformed: l.malformed, TooLong: l.tooLong,
		Unknown: l.unknown, UnknownErrors: l.unknownE,
		Kinds: make([]snapshot.KernelKind, 0, len(l.kinds)),
		User:  snapshot.KernelUser{Count: l.userCount, Recent: l.user.list()},
	}
	nowMin := now.Unix() / 60
	for i := range l.kinds {
		k := &l.kinds[i]
		kk := snapshot.KernelKind{
			Kind: k.entry.Kind, Findings: append([]string{}, k.entry.Findings...), Source: k.entry.Source,
			Count: k.count, First: k.first, Last: k.last, Recent: k.recent.list(),
		}
		for _, m := range k.minutes {
			if m.N > 0 && m.Minute >= nowMin-60 && m.Minute <= nowMin {
				kk.LastHour += int(m.N)
			}
		}
		if n := len(kk.Recent); n > 0 {
			kk.Message, kk.Fields = kk.Recent[n-1].Text, kk.Recent[n-1].Fields
		}
		s.Kinds = append(s.Kinds, kk)
	}
	return s
}

// ReadOnce reads the kernel log at path from its oldest record to its
// newest, once, and summarizes it at now: the look of picket doctor and
// picket snapshot. An error opening path is returned as it is
// (fs.ErrNotExist on a tree without one, EPERM without CAP_SYSLOG).
func ReadOnce(ctx context.Context, path string, opts Options, now time.Time) (*snapshot.KernelLog, error) {
	r, err := Open(path, FromFirst)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	opts.FromFirst = true
	l := NewLog(opts)
	if err := l.ReadBacklog(ctx, r); err != nil {
		l.Fail(err)
	}
	return l.Summary(now), nil
}

// BootOptions are the Options of a Log reading the kernel of PROC: its
// boot's time and id (left empty when unreadable). For the running
// kernel's own /proc the boot time is now less CLOCK_BOOTTIME, which is to
// the microsecond what btime gives to the second (btime is cut, not
// rounded: a message would read up to a second early).
func BootOptions(proc string) Options {
	boot, _ := BootTime(proc)
	if filepath.Clean(proc) == "/proc" {
		var ts unix.Timespec
		if unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts) == nil {
			boot = time.Now().Add(-time.Duration(ts.Nano()))
		}
	}
	id, _ := BootID(proc)
	return Options{Boot: boot, BootID: id}
}
