package collect

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"

	"github.com/picket-guard/picket/internal/snapshot"
)

// beancounterSource reads OpenVZ's /proc/user_beancounters (the
// V-Server that froze when numothersock hit its barrier of 400). procfs has
// no parser for it: it only exists on OpenVZ/Virtuozzo kernels.
type beancounterSource struct{}

func (beancounterSource) name() snapshot.Source { return snapshot.SourceBeancounters }

func (beancounterSource) update(_ context.Context, c *Collector, snap *snapshot.Snapshot) error {
	path := filepath.Join(c.proc, "user_beancounters")
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return ErrNoData
	}
	if err != nil {
		return err
	}
	rows, err := ParseBeancounters(b, path)
	if err != nil {
		return err
	}
	snap.Beancounters = rows
	return nil
}

// ParseBeancounters parses the text of /proc/user_beancounters:
//
//	Version: 2.5
//	       uid  resource           held    maxheld    barrier      limit    failcnt
//	      101:  kmemsize        2854282    3100866   11055923   11377049          0
//	            numothersock        400        400        400        400         17
//
// A "UID:" prefix starts a container's block; the rows after it belong to
// it. name (a path) is used in errors only.
func ParseBeancounters(b []byte, name string) ([]snapshot.Beancounter, error) {
	rows := []snapshot.Beancounter{}
	uid := ""
	line := 0
	for len(b) > 0 {
		line++
		var l []byte
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			l, b = b[:i], b[i+1:]
		} else {
			l, b = b, nil
		}
		f := bytes.Fields(l)
		if len(f) == 0 {
			continue
		}
		if bytes.Equal(f[0], []byte("Version:")) || bytes.Equal(f[0], []byte("uid")) {
			continue
		}
		if last := f[0][len(f[0])-1]; last == ':' {
			uid = string(f[0][:len(f[0])-1])
			if uid == "" {
				return nil, fmt.Errorf("%s:%d: empty uid", name, line)
			}
			f = f[1:]
		}
		if uid == "" {
			return nil, fmt.Errorf("%s:%d: resource row before any \"UID:\"", name, line)
		}
		if len(f) != 6 {
			return nil, fmt.Errorf("%s:%d: want resource and 5 numbers, got %d fields", name, line, len(f))
		}
		var v [5]uint64
		for i := range v {
			n, err := strconv.ParseUint(string(f[i+1]), 10, 64)
			if err != nil {
				return nil, fmt.Errorf("%s:%d: %s field %d: %w", name, line, f[0], i+2, err)
			}
			v[i] = n
		}
		rows = append(rows, snapshot.Beancounter{
			UID: uid, Resource: string(f[0]),
			Held: v[0], MaxHeld: v[1], Barrier: v[2], Limit: v[3], Failcnt: v[4],
		})
	}
	return rows, nil
}
