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
	"syscall"

	"github.com/picket-guard/picket/internal/snapshot"
)

// vmstatKeys are the /proc/vmstat counters that tell thrashing from mere
// memory use: pages swapped in and out, major faults, and OOM kills.
var vmstatKeys = map[string]bool{
	"pswpin": true, "pswpout": true, "pgmajfault": true, "oom_kill": true,
	"pgscan_direct": true, "pgsteal_direct": true, "allocstall_normal": true,
	// Before 4.8 the direct-reclaim stalls were one counter, allocstall
	// (mm/vmstat.c), split per zone since.
	"allocstall": true,
}

// vmstatSource reads /proc/vmstat. procfs has no parser for it (its VM type
// is /proc/sys/vm), so this one is written here, the way node_exporter's
// vmstat collector reads it: "name value" per line.
type vmstatSource struct{}

func (vmstatSource) name() snapshot.Source { return snapshot.SourceVMStat }

func (vmstatSource) update(_ context.Context, c *Collector, snap *snapshot.Snapshot) error {
	path := filepath.Join(c.proc, "vmstat")
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return ErrNoData
	}
	if err != nil {
		return err
	}
	m, err := parseVMStat(b, path)
	if err != nil {
		return err
	}
	snap.Memory.VMStat = m
	return nil
}

// parseVMStat keeps the counters in vmstatKeys.
func parseVMStat(b []byte, path string) (map[string]uint64, error) {
	out := map[string]uint64{}
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
		if len(f) != 2 {
			return nil, fmt.Errorf("%s:%d: want \"name value\", got %d fields", path, line, len(f))
		}
		if !vmstatKeys[string(f[0])] {
			continue
		}
		v, err := strconv.ParseUint(string(f[1]), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %s: %w", path, line, f[0], err)
		}
		out[string(f[0])] = v
	}
	return out, nil
}

func isNotSupported(err error) bool {
	return errors.Is(err, syscall.EOPNOTSUPP) || errors.Is(err, syscall.ENOTSUP)
}
