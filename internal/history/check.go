package history

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// ErrCorrupt marks a history file whose pages do not hold together (a
// disk error, a torn write on a filesystem that lied about fsync, a copy
// cut short).
var ErrCorrupt = errors.New("history file is damaged")

// Check reads the file at path through bbolt's own consistency check
// (every page reachable once, of the right type, keys in order, the
// freelist sound) and returns an error wrapping ErrCorrupt when it is
// damaged; nil when it is sound or does not exist. bbolt panics on some
// damaged pages instead of returning an error, and an Open, a Record or a
// Query that hit one would take picket down: the daemon calls Check before
// Open and sets a damaged file aside. It reads the whole file once.
func Check(path string) (err error) {
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: %s: %v", ErrCorrupt, path, r)
		}
	}()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: 10 * time.Second, FreelistType: bolt.FreelistMapType})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return fmt.Errorf("history %s: busy: another process holds it", path)
	}
	if err != nil {
		return fmt.Errorf("%w: %s: %v", ErrCorrupt, path, err)
	}
	defer db.Close()
	var found []string
	n := 0
	err = db.View(func(tx *bolt.Tx) error {
		for e := range tx.Check() { // drained whole: the check runs in its own goroutine
			if n++; len(found) < 3 {
				found = append(found, e.Error())
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("%w: %s: %v", ErrCorrupt, path, err)
	}
	if n > 0 {
		return fmt.Errorf("%w: %s: %d problems, first: %s", ErrCorrupt, path, n, strings.Join(found, "; "))
	}
	return nil
}
