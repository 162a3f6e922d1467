package notify

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/picket-guard/picket/internal/alarm"
)

// The spool is a directory with one JSON file per pending delivery, named
// CREATED-RANDOM.json so a listing sorts oldest first. A file is written as
// .tmp.NAME, fsynced, renamed into place and the directory fsynced: after a
// crash a file is either whole or absent. A .tmp file left by a crash is
// removed when the spool is opened; a file that does not parse is renamed
// NAME.bad and left for the administrator.

const spoolVersion = 1

// spoolItem is one pending delivery.
type spoolItem struct {
	Version int    `json:"version"`
	ID      string `json:"id"`
	Output  string `json:"output"`
	// Kind and Spec are kept only for outputs the configuration does not
	// name (a rule's inline output), so a restart can rebuild them.
	// Secrets in a spec (a mail password) are not written.
	Kind        string          `json:"kind,omitempty"`
	Spec        json.RawMessage `json:"spec,omitempty"`
	Created     time.Time       `json:"created"`
	Attempts    int             `json:"attempts"`
	LastAttempt time.Time       `json:"last_attempt,omitzero"`
	LastError   string          `json:"last_error,omitempty"`
	Batch       alarm.Batch     `json:"batch"`

	size int64 // bytes on disk
}

type spool struct {
	dir  string
	lock *os.File
}

// openSpool creates dir (0700: batches name users and processes), takes an
// exclusive lock on it (two picket daemons on one spool would send
// everything twice) and clears the leftovers of a crash.
func openSpool(dir string) (*spool, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	lf, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_RDWR|os.O_CREATE|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("spool lock: %w", err)
	}
	if err := unix.Flock(int(lf.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		lf.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("spool %s is in use by another dispatcher (another picket running?)", dir)
		}
		return nil, fmt.Errorf("spool lock %s: %w", dir, err)
	}
	return &spool{dir: dir, lock: lf}, nil
}

func (s *spool) close() error {
	if s.lock == nil {
		return nil
	}
	err := s.lock.Close() // releases the flock
	s.lock = nil
	return err
}

// newID is sortable by sending order (ns is the creation time in
// nanoseconds, kept increasing by the caller) and unique.
func newID(ns int64) string {
	var r [6]byte
	_, _ = rand.Read(r[:])
	return fmt.Sprintf("%020d-%s", ns, hex.EncodeToString(r[:]))
}

// idNanos is the time part of an id.
func idNanos(id string) int64 {
	head, _, _ := strings.Cut(id, "-")
	n, _ := strconv.ParseInt(head, 10, 64)
	return n
}

// load reads every item; bad files are set aside and reported through bad.
func (s *spool) load(bad func(name string, err error)) ([]*spoolItem, error) {
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	var items []*spoolItem
	for _, e := range ents {
		name := e.Name()
		if strings.HasPrefix(name, ".tmp.") {
			_ = os.Remove(filepath.Join(s.dir, name))
			continue
		}
		if !e.Type().IsRegular() || !strings.HasSuffix(name, ".json") {
			continue
		}
		it, err := s.read(name)
		if err != nil {
			bad(name, err)
			_ = os.Rename(filepath.Join(s.dir, name), filepath.Join(s.dir, name+".bad"))
			continue
		}
		items = append(items, it)
	}
	sort.Slice(items, func(i, j int) bool { return items[i].ID < items[j].ID })
	return items, nil
}

func (s *spool) read(name string) (*spoolItem, error) {
	b, err := os.ReadFile(filepath.Join(s.dir, name))
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber() // counts stay exact integers, not float64
	var it spoolItem
	if err := dec.Decode(&it); err != nil {
		return nil, fmt.Errorf("decode: %w", err)
	}
	if it.Version != spoolVersion {
		return nil, fmt.Errorf("version %d, want %d", it.Version, spoolVersion)
	}
	if it.ID+".json" != name || it.Output == "" {
		return nil, fmt.Errorf("id %q or output %q does not match the file", it.ID, it.Output)
	}
	it.size = int64(len(b))
	return &it, nil
}

// write stores it atomically and durably, and returns its size.
func (s *spool) write(it *spoolItem) (int64, error) {
	b, err := marshalJSON(it)
	if err != nil {
		return 0, fmt.Errorf("spool encode: %w", err)
	}
	final := filepath.Join(s.dir, it.ID+".json")
	tmp := filepath.Join(s.dir, ".tmp."+it.ID+".json")
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return 0, fmt.Errorf("spool: %w", err)
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, final)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return 0, fmt.Errorf("spool write %s: %w", final, err)
	}
	return int64(len(b)), s.syncDir()
}

// remove deletes a delivered or expired item.
func (s *spool) remove(id string) error {
	err := os.Remove(filepath.Join(s.dir, id+".json"))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("spool remove: %w", err)
	}
	return s.syncDir()
}

func (s *spool) syncDir() error {
	d, err := os.Open(s.dir)
	if err != nil {
		return fmt.Errorf("spool sync: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("spool sync: %w", err)
	}
	return nil
}
