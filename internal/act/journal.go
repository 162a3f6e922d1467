package act

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// JournalFile is the journal's name under the state directory.
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
	Spec    json.RawMessage `json:"spec,omitempty"`
	Row     map[string]any  `json:"row,omitempty"`
	Targets []any           `json:"targets,omitempty"`
	Undo    *Undo           `json:"undo,omitempty"`
	Until   time.Time       `json:"until,omitzero"` // when a timed action (throttle, freeze) ends by itself
	Result  string          `json:"result,omitempty"`
	Error   string          `json:"error,omitempty"`
	Output  string          `json:"output,omitempty"` // exec's captured output, bounded
}

// Undo is what reverting an action needs, written with its intent. A kind
// uses the fields whose meaning fits it (a cgroup directory, a key with its
// old and new value), so a new kind adds one only for what none says.
type Undo struct {
	// throttle: the nftables rule is found by its user data, "picket:ID".
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

// Journal appends entries to StateDir/journal.jsonl: one JSON object per
// line, each write under flock and fsynced, so `picket undo` in another
// process and a crash mid-write leave whole lines behind.
type Journal struct {
	mu   sync.Mutex
	f    *os.File
	path string
}

// OpenJournal opens (creating) the journal in dir.
func OpenJournal(dir string) (*Journal, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("state directory: %w", err)
	}
	p := filepath.Join(dir, JournalFile)
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND|os.O_CREATE|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open journal: %w", err)
	}
	if d, err := os.Open(dir); err == nil { // the new file's name must survive a crash too
		d.Sync()
		d.Close()
	}
	return &Journal{f: f, path: p}, nil
}

// Append writes e as one line and fsyncs it.
func (j *Journal) Append(e Entry) error {
	b, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	b = append(b, '\n')
	j.mu.Lock()
	defer j.mu.Unlock()
	fd := int(j.f.Fd())
	if err := unix.Flock(fd, unix.LOCK_EX); err != nil {
		return fmt.Errorf("lock %s: %w", j.path, err)
	}
	defer unix.Flock(fd, unix.LOCK_UN)
	if _, err := j.f.Write(b); err != nil {
		return fmt.Errorf("write %s: %w", j.path, err)
	}
	if err := j.f.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", j.path, err)
	}
	return nil
}

// Close closes the journal file.
func (j *Journal) Close() error { return j.f.Close() }

// ReadJournal reads every entry of the journal in dir (none when it does not
// exist yet). A line that does not parse (a torn last write) is skipped and
// named in the returned error; the other entries are still returned.
func ReadJournal(dir string) ([]Entry, error) {
	b, err := os.ReadFile(filepath.Join(dir, JournalFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read journal: %w", err)
	}
	var out []Entry
	var errs []error
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for n := 1; sc.Scan(); n++ {
		if len(bytes.TrimSpace(sc.Bytes())) == 0 {
			continue
		}
		var e Entry
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil || e.ID == "" {
			errs = append(errs, fmt.Errorf("%s line %d: not a journal entry", filepath.Join(dir, JournalFile), n))
			continue
		}
		out = append(out, e)
	}
	if err := sc.Err(); err != nil {
		errs = append(errs, fmt.Errorf("read journal: %w", err))
	}
	return out, errors.Join(errs...)
}

// States of an Action.
const (
	StateInFlight = "in-flight" // intent without result: running now, or picket stopped mid-action
	StateDone     = "done"      // finished; nothing to revert
	StateFailed   = "failed"
	StateActive   = "active"   // a throttle or freeze still running, or a sysctl that can be undone
	StateExpired  = "expired"  // its time is up but nobody reverted it yet (picket was not running): Recover will
	StateReverted = "reverted" // undone, or ended by itself
	StateRefused  = "refused"  // rate-limited
)

// Action is the journal's entries for one id folded together.
type Action struct {
	ID       string    `json:"id"`
	Time     time.Time `json:"time"`
	Type     string    `json:"type"`
	Host     string    `json:"host,omitempty"`
	Rule     string    `json:"rule,omitempty"`
	Case     string    `json:"case,omitempty"`
	State    string    `json:"state"`
	Targets  []any     `json:"targets,omitempty"`
	Result   string    `json:"result,omitempty"`
	Error    string    `json:"error,omitempty"`
	Output   string    `json:"output,omitempty"`
	Until    time.Time `json:"until,omitzero"`
	Reverted time.Time `json:"reverted,omitzero"`
	// RevertResult says how it was reverted ("ended after 10m", "undone").
	RevertResult string `json:"revert_result,omitempty"`
	Undo         *Undo  `json:"undo,omitempty"`
}

// Actions folds entries into one Action per id, oldest first. Whether an
// action is active (until reverted) or expired comes from its kind: see
// kind.revert and kind.timed.
func Actions(entries []Entry, now time.Time) []Action { return foldActions(entries, now, kinds()) }

// actions is Actions as this Runner's kinds see them.
func (r *Runner) actions(entries []Entry) []Action {
	return foldActions(entries, r.opts.Now(), r.kinds)
}

func foldActions(entries []Entry, now time.Time, ks []kind) []Action {
	idx := map[string]int{}
	var out []Action
	for _, e := range entries {
		i, ok := idx[e.ID]
		if !ok {
			i = len(out)
			idx[e.ID] = i
			out = append(out, Action{ID: e.ID, Time: e.Time, Type: e.Type, Host: e.Host, Rule: e.Rule, Case: e.Case})
		}
		a := &out[i]
		switch e.Phase {
		case PhaseIntent:
			a.Targets, a.Undo, a.Until = e.Targets, e.Undo, e.Until
			a.State = StateInFlight
		case PhaseResult:
			a.Result, a.Error, a.Output = e.Result, e.Error, e.Output
			if e.Targets != nil {
				a.Targets = e.Targets
			}
			a.State = StateDone
		case PhaseRevert:
			a.Reverted, a.RevertResult = e.Time, e.Result
			if e.Error != "" {
				a.RevertResult += " (" + e.Error + ")"
			}
		case PhaseRefused:
			a.Result, a.Error, a.State = e.Result, e.Error, StateRefused
		}
	}
	for i := range out {
		a := &out[i]
		k := kindNamed(ks, a.Type)
		switch {
		case a.State == StateRefused:
		case !a.Reverted.IsZero():
			a.State = StateReverted
		case a.State == StateInFlight:
		case a.Error != "":
			// An undoable action that fails takes back what it did at once.
			a.State = StateFailed
		case k != nil && k.revert != nil && a.Undo != nil:
			a.State = StateActive
			if !a.Until.IsZero() && !now.Before(a.Until) {
				a.State = StateExpired
			}
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Time.Before(out[j].Time) })
	return out
}
