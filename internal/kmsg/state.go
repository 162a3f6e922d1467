package kmsg

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/picket-guard/picket/internal/snapshot"
)

// stateVersion is the layout of State; a file of another version is
// ignored (read from the buffer again).
const stateVersion = 1

// State is a Log saved between runs of picket: the boot it belongs to,
// the sequence number to resume after, and the counts and messages so
// far, so a restarted daemon counts and reports each message once.
type State struct {
	Version       int                      `json:"version"`
	BootID        string                   `json:"boot_id"`
	NextSeq       uint64                   `json:"next_seq"`
	Records       uint64                   `json:"records"`
	Lost          uint64                   `json:"lost"`
	Malformed     uint64                   `json:"malformed"`
	TooLong       uint64                   `json:"too_long"`
	Unknown       uint64                   `json:"unknown"`
	UnknownErrors uint64                   `json:"unknown_errors"`
	Kinds         map[string]KindState     `json:"kinds"`
	UserCount     uint64                   `json:"user_count"`
	User          []snapshot.KernelMessage `json:"user"`
}

// KindState is one kind's part of a State.
type KindState struct {
	Count   uint64                   `json:"count"`
	First   time.Time                `json:"first"`
	Last    time.Time                `json:"last"`
	Recent  []snapshot.KernelMessage `json:"recent"`
	Minutes []minuteCount            `json:"minutes"`
}

// State returns what to save of the Log.
func (l *Log) State() State {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := State{
		Version: stateVersion, BootID: l.opts.BootID, NextSeq: l.next,
		Records: l.records, Lost: l.lost, Malformed: l.malformed, TooLong: l.tooLong,
		Unknown: l.unknown, UnknownErrors: l.unknownE,
		Kinds:     map[string]KindState{},
		UserCount: l.userCount, User: l.user.list(),
	}
	for i := range l.kinds {
		k := &l.kinds[i]
		if k.count == 0 {
			continue
		}
		ks := KindState{Count: k.count, First: k.first, Last: k.last, Recent: k.recent.list()}
		for _, m := range k.minutes {
			if m.N > 0 {
				ks.Minutes = append(ks.Minutes, m)
			}
		}
		s.Kinds[k.entry.Kind] = ks
	}
	return s
}

// Restore makes the Log continue from a saved State: reading then skips
// every record up to the saved sequence number. A State of another boot
// (sequence numbers start again at each boot) or version is not used:
// Restore returns false and the Log stays as it was.
func (l *Log) Restore(s State) bool {
	if s.Version != stateVersion || s.BootID == "" || s.BootID != l.opts.BootID {
		return false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.started, l.next, l.resumed = true, s.NextSeq, s.NextSeq
	l.records, l.lost, l.malformed, l.tooLong = s.Records, s.Lost, s.Malformed, s.TooLong
	l.unknown, l.unknownE, l.userCount = s.Unknown, s.UnknownErrors, s.UserCount
	l.user = newRing(l.opts.Ring)
	for _, m := range s.User {
		l.user.push(m)
	}
	for name, ks := range s.Kinds {
		k := l.kind(name)
		if k == nil {
			continue // a kind this version no longer knows
		}
		k.count, k.first, k.last = ks.Count, ks.First, ks.Last
		k.recent = newRing(l.opts.Ring)
		for _, m := range ks.Recent {
			k.recent.push(m)
		}
		k.minutes = [hourSlots]minuteCount{}
		for _, m := range ks.Minutes {
			slot := &k.minutes[uint64(m.Minute)%hourSlots]
			if m.Minute > slot.Minute {
				*slot = m
			}
		}
	}
	return true
}

// SaveState writes s to path atomically (a temporary file renamed over
// it), readable by root only: messages name processes and cgroups.
func SaveState(path string, s State) error {
	b, err := json.Marshal(s)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("save %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return fmt.Errorf("save %s: %w", path, err)
	}
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("save %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("save %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("save %s: %w", path, err)
	}
	return nil
}

// LoadState reads a State saved by SaveState; a missing file is an empty
// State and no error.
func LoadState(path string) (State, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return State{}, nil
	}
	if err != nil {
		return State{}, err
	}
	var s State
	if err := json.Unmarshal(b, &s); err != nil {
		return State{}, fmt.Errorf("%s: %w", path, err)
	}
	return s, nil
}

// BootID reads PROC/sys/kernel/random/boot_id.
func BootID(proc string) (string, error) {
	b, err := os.ReadFile(filepath.Join(proc, "sys", "kernel", "random", "boot_id"))
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}

// BootTime reads btime from PROC/stat: the wall-clock time of boot, to
// second precision, as `dmesg -T` uses it.
func BootTime(proc string) (time.Time, error) {
	path := filepath.Join(proc, "stat")
	b, err := os.ReadFile(path)
	if err != nil {
		return time.Time{}, err
	}
	for n, line := range bytes.Split(b, []byte("\n")) {
		v, ok := bytes.CutPrefix(line, []byte("btime "))
		if !ok {
			continue
		}
		sec, err := strconv.ParseInt(string(bytes.TrimSpace(v)), 10, 64)
		if err != nil {
			return time.Time{}, fmt.Errorf("%s:%d: btime: %w", path, n+1, err)
		}
		return time.Unix(sec, 0), nil
	}
	return time.Time{}, fmt.Errorf("%s: no btime line", path)
}
