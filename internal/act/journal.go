package act

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/picket-guard/picket/internal/secpath"
)

// JournalFile is the journal's name under the state directory. Rotated
// generations sit beside it as JournalFile.1 (the newest) to .Keep.
const JournalFile = "journal.jsonl"

// Phases of a journal entry. Every change writes an intent before it is made
// (with what undoes it) and a result after; a throttle, freeze or sysctl
// that is later reverted (its time is up, `picket undo`, or a restart found
// it expired) gets a revert entry. Dry runs are not journaled at all: the
// journal is the record of what changed the host.
const (
	PhaseIntent  = "intent"
	PhaseResult  = "result"
	PhaseRevert  = "revert"
	PhaseRefused = "refused" // rate-limited: nothing was done
)

// Entry is one line of the journal.
type Entry struct {
	ID      string          `json:"id"`
	Time    time.Time       `json:"time"`
	Phase   string          `json:"phase"`
	Type    string          `json:"type"`
	Host    string          `json:"host,omitempty"`
	Rule    string          `json:"rule,omitempty"`
	Case    string          `json:"case,omitempty"`
	Spec    json.RawMessage `json:"spec,omitempty"` // intent: the rendered spec, selectors included
	Row     map[string]any  `json:"row,omitempty"`
	Targets []any           `json:"targets,omitempty"`
	// Procs says who the pids in Targets were when picket chose them (kill,
	// freeze): after the fact, a pid alone names nobody.
	Procs  []Target  `json:"procs,omitempty"`
	Undo   *Undo     `json:"undo,omitempty"`
	Until  time.Time `json:"until,omitzero"` // when a timed action (throttle, freeze) ends by itself
	Result string    `json:"result,omitempty"`
	Error  string    `json:"error,omitempty"`
	Output string    `json:"output,omitempty"` // exec's captured output, bounded
	// Count and Last sum up a run of refusals of one rule (a rate limit
	// tripped): one entry when it starts, one more at most every
	// refusalEvery while it lasts, and one when it ends, each holding the
	// count so far; readers keep the highest.
	Count int       `json:"count,omitempty"`
	Last  time.Time `json:"last,omitzero"`
	// Carried marks a copy made at rotation into the new file, so that the
	// live journal alone holds every action still in force; the original
	// is in the rotated generation.
	Carried bool `json:"carried,omitempty"`
}

// Undo is what reverting an action needs, written with its intent. A kind
// uses the fields whose meaning fits it (a cgroup directory, a key with its
// old and new value), so a new kind adds one only for what none says.
type Undo struct {
	// throttle: the nftables rule is found by its user data, "picket:ID",
	// and its set (whose element the kernel expires) by the same id.
	NetNS string `json:"netns,omitempty"` // network namespace file, "" for picket's own
	Proto string `json:"proto,omitempty"`
	Port  int    `json:"port,omitempty"`
	// freeze, freeze_cgroup, limit
	Method string    `json:"method,omitempty"` // cgroup2, freezer (v1) or sigstop
	Cgroup string    `json:"cgroup,omitempty"` // the cgroup directory written to
	Procs  []ProcRef `json:"procs,omitempty"`
	// sysctl; limit (Key is the interface file, pids.max or memory.high)
	Key string `json:"key,omitempty"`
	Old string `json:"old,omitempty"`
	New string `json:"new,omitempty"`
	// archive: the temporary file to remove if picket died mid-copy.
	Temp string `json:"temp,omitempty"`
}

// ProcRef names one process for good: pid and start time (clock ticks
// after boot, /proc/PID/stat field 22).
type ProcRef struct {
	PID   int    `json:"pid"`
	Start uint64 `json:"start_ticks"`
}

// Target is one process an action aimed at, as it was when picket chose
// it. Comm, User and Cmdline are whatever the process made them: escape
// them before printing.
type Target struct {
	PID     int       `json:"pid"`
	UID     uint32    `json:"uid"`
	User    string    `json:"user"`
	Comm    string    `json:"comm"`
	Start   time.Time `json:"start"`
	Cmdline string    `json:"cmdline,omitempty"` // at most maxCmdline bytes
}

// JournalOptions configure a Journal. Zero values take the defaults.
type JournalOptions struct {
	// Logger hears about repairs (a half-written last line cut off),
	// skipped lines and rotations.
	Logger *slog.Logger
	// MaxBytes is the size past which the journal is rotated (default
	// 8 MiB).
	MaxBytes int64
	// Keep is how many rotated generations are kept (default 3); older
	// ones are deleted. A negative Keep keeps none.
	Keep int
}

const (
	defaultJournalMaxBytes = 8 << 20
	defaultJournalKeep     = 3
	// maxLine bounds one entry: longer lines are not picket's (its own are
	// bounded by the rendered spec, 256-byte command lines and exec's
	// bounded output) and are skipped, not followed into memory.
	maxLine = 1 << 20
)

// Journal appends entries to StateDir/journal.jsonl: one JSON object per
// line, each write under flock and fsynced, so `picket undo` in another
// process and a crash mid-write leave whole lines behind (a half-written
// last line is cut off when the journal is next opened, and a line torn by
// another process is ended before the next entry is written, so it never
// swallows that entry).
//
// It keeps an index of the actions still open — in flight, in force, or
// undoable — built in one pass when it is opened and followed as lines are
// appended (by this process or another), so Recover, Undo and a throttle's
// "already throttled" check never read the file again. The index holds
// each open action's entries, which is also what rotation carries over.
type Journal struct {
	dir, path string
	opts      JournalOptions
	log       *slog.Logger
	kinds     *[]kind // the Runner's: a test adds a kind after opening

	mu   sync.Mutex
	f    *os.File
	ino  uint64
	off  int64 // the file up to here is folded into open
	seq  uint64
	open map[string]*openAction
}

// openAction is an action the index still follows, with its entries.
type openAction struct {
	seq     uint64 // order of first appearance
	a       Action
	entries []Entry
}

// OpenJournal opens (creating) the journal in dir, repairs a half-written
// last line, builds its index and rotates it if it is over its size.
func OpenJournal(dir string, opts JournalOptions) (*Journal, error) {
	ks := kinds()
	return openJournal(dir, opts, &ks)
}

func openJournal(dir string, opts JournalOptions, ks *[]kind) (*Journal, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.MaxBytes <= 0 {
		opts.MaxBytes = defaultJournalMaxBytes
	}
	if opts.Keep == 0 {
		opts.Keep = defaultJournalKeep
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("state directory: %w", err)
	}
	// What the journal says is undone and recovered as root: a state
	// directory, or a journal, another user can write is refused.
	if err := secpath.Dir(dir); err != nil {
		return nil, fmt.Errorf("state directory: %w", err)
	}
	j := &Journal{dir: dir, path: filepath.Join(dir, JournalFile), opts: opts, log: opts.Logger, kinds: ks}
	if err := j.reopen(); err != nil {
		return nil, err
	}
	syncDir(dir) // the new file's name must survive a crash too
	err := j.locked(func() error {
		if err := j.repair(); err != nil {
			return err
		}
		if err := j.sync(); err != nil {
			return err
		}
		if j.off > j.opts.MaxBytes {
			return j.rotate()
		}
		return nil
	})
	if err != nil {
		j.f.Close()
		return nil, err
	}
	return j, nil
}

// reopen opens the journal's path (creating it) and forgets the index: the
// next sync folds the file from its start.
func (j *Journal) reopen() error {
	f, err := os.OpenFile(j.path, os.O_RDWR|os.O_APPEND|os.O_CREATE|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return fmt.Errorf("open journal: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("stat %s: %w", j.path, err)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && (int(st.Uid) != os.Geteuid() || st.Mode&0o022 != 0) {
		f.Close()
		return fmt.Errorf("%s: owned by uid %d with mode %#o: a journal only picket's user (uid %d) may write is trusted", j.path, st.Uid, st.Mode&0o7777, os.Geteuid())
	}
	if j.f != nil {
		j.f.Close()
	}
	j.f, j.ino, j.off, j.open = f, inode(fi), 0, map[string]*openAction{}
	return nil
}

func inode(fi os.FileInfo) uint64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return st.Ino
	}
	return 0
}

func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}

// locked runs fn with the journal's mutex and its file's flock held, on the
// file the path names now: another process may have rotated it, and its
// lock is then on a file nobody appends to any more.
func (j *Journal) locked(fn func() error) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.f == nil {
		return errors.New("journal closed")
	}
	for tries := 0; ; tries++ {
		fd := int(j.f.Fd())
		if err := unix.Flock(fd, unix.LOCK_EX); err != nil {
			return fmt.Errorf("lock %s: %w", j.path, err)
		}
		fi, err := os.Lstat(j.path)
		if err == nil && inode(fi) == j.ino {
			err := fn()
			unix.Flock(int(j.f.Fd()), unix.LOCK_UN) // fn may have rotated: j.f is the new file
			return err
		}
		unix.Flock(fd, unix.LOCK_UN)
		if tries == 3 {
			return fmt.Errorf("journal %s keeps changing under us: %v", j.path, err)
		}
		if err := j.reopen(); err != nil {
			return err
		}
	}
}

// repair cuts off a half-written last line (a crash or a full disk in the
// middle of a write): appended to, it would swallow the next entry. The
// line's intent was never fsynced whole, so nothing acted on it. Called
// with the flock held.
func (j *Journal) repair() error {
	fi, err := j.f.Stat()
	if err != nil || fi.Size() == 0 {
		return err
	}
	size := fi.Size()
	var last [1]byte
	if _, err := j.f.ReadAt(last[:], size-1); err != nil {
		return fmt.Errorf("read %s: %w", j.path, err)
	}
	if last[0] == '\n' {
		return nil
	}
	end, err := lastNewline(j.f, size)
	if err != nil {
		return err
	}
	torn := make([]byte, min(size-end, 200))
	j.f.ReadAt(torn, end)
	if err := j.f.Truncate(end); err != nil {
		return fmt.Errorf("cut the half-written last line of %s: %w", j.path, err)
	}
	if err := j.f.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", j.path, err)
	}
	j.log.Warn("journal: cut off a half-written last line (a crash or a full disk mid-write); nothing was done on it",
		"file", j.path, "offset", end, "bytes", size-end, "start", strconv.Quote(string(torn)))
	return nil
}

// lastNewline is the offset just past the last '\n' of f's first size
// bytes (0 when there is none).
func lastNewline(f *os.File, size int64) (int64, error) {
	buf := make([]byte, 64<<10)
	for end := size; end > 0; {
		start := max(end-int64(len(buf)), 0)
		b := buf[:end-start]
		if _, err := f.ReadAt(b, start); err != nil && !errors.Is(err, io.EOF) {
			return 0, fmt.Errorf("read %s: %w", f.Name(), err)
		}
		if i := bytes.LastIndexByte(b, '\n'); i >= 0 {
			return start + int64(i) + 1, nil
		}
		end = start
	}
	return 0, nil
}

// sync folds into the index what was appended since the last sync, by
// this process or another; a rotation by another process starts the index
// again from the new file. It leaves a line still being written (no '\n'
// yet) for the next sync. Called with j.mu held.
func (j *Journal) sync() error {
	fi, err := os.Lstat(j.path)
	if err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	if inode(fi) != j.ino {
		if err := j.reopen(); err != nil {
			return err
		}
	}
	if fi.Size() <= j.off {
		return nil
	}
	bad := 0
	st, err := eachLine(io.NewSectionReader(j.f, j.off, fi.Size()-j.off), func(_ int, line []byte) {
		if id, phase, ok := peek(line); ok && string(phase) != PhaseIntent && j.open[string(id)] == nil {
			return // a line of an action the index does not follow: no need to decode it
		}
		var e Entry
		if json.Unmarshal(line, &e) == nil && e.ID != "" {
			j.fold(e)
		} else if len(bytes.TrimSpace(line)) > 0 {
			bad++
		}
	})
	j.off += st.consumed
	if bad+st.long > 0 {
		j.log.Warn("journal: skipped lines that are not journal entries", "file", j.path, "lines", bad,
			"longer_than_max", st.long, "max_bytes", maxLine)
	}
	if err != nil {
		return fmt.Errorf("read %s: %w", j.path, err)
	}
	return nil
}

// peek reads the id and phase at the start of a line as Append writes it
// ({"id":"…","time":"…","phase":"…",…}) without decoding the rest: most
// lines of a long journal belong to actions long settled. ok is false when
// the line is not in that form; the decoder then judges it.
func peek(line []byte) (id, phase []byte, ok bool) {
	rest, found := bytes.CutPrefix(line, []byte(`{"id":"`))
	if !found {
		return nil, nil, false
	}
	i := bytes.IndexByte(rest, '"')
	if i < 0 || bytes.IndexByte(rest[:i], '\\') >= 0 {
		return nil, nil, false
	}
	id, rest = rest[:i], rest[i:]
	const key = `"phase":"`
	k := bytes.Index(rest[:min(len(rest), 96)], []byte(key))
	if k < 0 {
		return nil, nil, false
	}
	rest = rest[k+len(key):]
	e := bytes.IndexByte(rest, '"')
	if e < 0 {
		return nil, nil, false
	}
	return id, rest[:e], true
}

// fold adds e to the index: an intent opens an action, and the entry that
// settles it (its result, unless it stays undoable; its revert) closes it.
// Entries of actions the index does not follow (already closed, refusals)
// are dropped.
func (j *Journal) fold(e Entry) {
	oa := j.open[e.ID]
	if oa == nil {
		if e.Phase != PhaseIntent {
			return
		}
		j.seq++
		oa = &openAction{seq: j.seq, a: Action{ID: e.ID, Time: e.Time, Type: e.Type, Host: e.Host, Rule: e.Rule, Case: e.Case}}
		j.open[e.ID] = oa
	}
	e.Carried = false
	applyEntry(&oa.a, e)
	oa.entries = append(oa.entries, e)
	if settled(oa.a, kindNamed(*j.kinds, oa.a.Type)) {
		delete(j.open, e.ID)
	}
}

// Append writes e as one line, fsyncs it, and rotates the journal once it
// has grown past its size.
func (j *Journal) Append(e Entry) error {
	b, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	b = append(b, '\n')
	return j.locked(func() error {
		if err := j.sync(); err != nil {
			return err
		}
		fi, err := j.f.Stat()
		if err != nil {
			return fmt.Errorf("stat %s: %w", j.path, err)
		}
		if fi.Size() > j.off {
			// A line another process left half-written (it died mid-write):
			// end it, so it does not swallow this entry.
			b = append([]byte{'\n'}, b...)
		}
		if _, err := j.f.Write(b); err != nil {
			return fmt.Errorf("write %s: %w", j.path, err)
		}
		if err := j.f.Sync(); err != nil {
			return fmt.Errorf("fsync %s: %w", j.path, err)
		}
		j.off = fi.Size() + int64(len(b))
		j.fold(e)
		if j.off > j.opts.MaxBytes {
			if err := j.rotate(); err != nil {
				// The entry is written: a journal that cannot rotate stays
				// whole, only larger.
				j.log.Error("journal: rotation failed", "file", j.path, "err", err)
			}
		}
		return nil
	})
}

// rotate makes the journal a rotated generation (JournalFile.1, the older
// ones moving up and the oldest deleted) and starts a new one holding a
// copy of every entry of the actions still open, so the live file alone is
// enough to recover, undo and re-arm. The new file replaces the old name
// atomically (a link keeps the old one as .1 first): a reader always finds
// a journal. Called with the flock held and the index synced.
func (j *Journal) rotate() error {
	tmp := j.path + ".new"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return fmt.Errorf("rotate journal: %w", err)
	}
	open := make([]*openAction, 0, len(j.open))
	for _, oa := range j.open {
		open = append(open, oa)
	}
	sort.Slice(open, func(a, b int) bool { return open[a].seq < open[b].seq })
	var buf bytes.Buffer
	for _, oa := range open {
		for _, e := range oa.entries {
			e.Carried = true
			b, err := json.Marshal(e)
			if err != nil {
				continue
			}
			buf.Write(b)
			buf.WriteByte('\n')
		}
	}
	_, err = f.Write(buf.Bytes())
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("rotate journal: %w", err)
	}
	gen := func(n int) string { return j.path + "." + strconv.Itoa(n) }
	if j.opts.Keep > 0 {
		for n := j.opts.Keep - 1; n >= 1; n-- {
			if err := os.Rename(gen(n), gen(n+1)); err != nil && !errors.Is(err, os.ErrNotExist) {
				os.Remove(tmp)
				return fmt.Errorf("rotate journal: %w", err)
			}
		}
		os.Remove(gen(1))
		if err := os.Link(j.path, gen(1)); err != nil {
			os.Remove(tmp)
			return fmt.Errorf("rotate journal: %w", err)
		}
	}
	if err := os.Rename(tmp, j.path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("rotate journal: %w", err)
	}
	syncDir(j.dir)
	old := j.off
	f, err = os.OpenFile(j.path, os.O_RDWR|os.O_APPEND|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return fmt.Errorf("reopen journal after rotation: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		f.Close()
		return fmt.Errorf("lock %s: %w", j.path, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("stat %s: %w", j.path, err)
	}
	j.f.Close() // releases the old file's lock: a writer waiting on it finds the new file
	// What another process appended between the rename and our lock is
	// folded by the next sync: the index holds only what was carried.
	j.f, j.ino, j.off = f, inode(fi), int64(buf.Len())
	j.log.Info("journal rotated", "file", j.path, "bytes", old, "carried_actions", len(open), "kept", max(j.opts.Keep, 0))
	return nil
}

// Close closes the journal file.
func (j *Journal) Close() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.f == nil {
		return nil
	}
	err := j.f.Close()
	j.f = nil
	return err
}

// Open lists the actions still open — in flight, in force (active or
// expired) or undoable — oldest first, as of now.
func (j *Journal) Open(now time.Time) ([]Action, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.f == nil {
		return nil, errors.New("journal closed")
	}
	err := j.sync()
	out := make([]Action, 0, len(j.open))
	for _, oa := range j.open {
		a := oa.a
		settleState(&a, now, kindNamed(*j.kinds, a.Type))
		out = append(out, a)
	}
	sort.Slice(out, func(a, b int) bool {
		if !out[a].Time.Equal(out[b].Time) {
			return out[a].Time.Before(out[b].Time)
		}
		return out[a].ID < out[b].ID
	})
	return out, err
}

// Find returns action id as of now: from the index while it is open, else
// from the lines of the journal and its rotated generations that name it
// (only those are decoded).
func (j *Journal) Find(id string, now time.Time) (Action, bool, error) {
	j.mu.Lock()
	if j.f == nil {
		j.mu.Unlock()
		return Action{}, false, errors.New("journal closed")
	}
	err := j.sync()
	if oa, ok := j.open[id]; ok {
		a := oa.a
		j.mu.Unlock()
		settleState(&a, now, kindNamed(*j.kinds, a.Type))
		return a, true, err
	}
	j.mu.Unlock()
	es, ferr := entriesOf(j.dir, id)
	if len(es) == 0 {
		return Action{}, false, errors.Join(err, ferr)
	}
	as := foldActions(es, now, *j.kinds)
	return as[0], true, errors.Join(err, ferr)
}
