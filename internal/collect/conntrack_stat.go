package collect

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/picket-guard/picket/internal/proctext"
	"github.com/picket-guard/picket/internal/snapshot"
)

// conntrackStatSource reads /proc/net/stat/nf_conntrack: netfilter's
// per-CPU counters, of which drop and early_drop back the kernel's "table
// full, dropping packet". It is written here because procfs's parser reads
// the columns by position and refuses any count but 16 or 17, while the
// file's header names them, and kernels have renamed ("searched" became
// "clashres") and added columns over time.
type conntrackStatSource struct{}

func (conntrackStatSource) name() snapshot.Source { return snapshot.SourceConntrackStat }

func (conntrackStatSource) update(_ context.Context, c *Collector, snap *snapshot.Snapshot) error {
	path := filepath.Join(c.proc, "net", "stat", "nf_conntrack")
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return ErrNoData // nf_conntrack not loaded
	}
	if err != nil {
		return err
	}
	st, err := parseConntrackStat(b, path)
	if err != nil {
		return err
	}
	snap.Kernel.ConntrackStat = st
	return nil
}

// parseConntrackStat sums the drop, early_drop and insert_failed columns
// over the per-CPU lines; values are hex (seq_printf "%08x" in
// ct_cpu_seq_show(), net/netfilter/nf_conntrack_standalone.c).
func parseConntrackStat(b []byte, path string) (*snapshot.ConntrackStat, error) {
	lines := bytes.Split(bytes.TrimRight(b, "\n"), []byte("\n"))
	hdr := bytes.Fields(lines[0])
	col := map[string]int{}
	for i, h := range hdr {
		col[string(h)] = i
	}
	for _, need := range []string{"drop", "early_drop"} {
		if _, ok := col[need]; !ok {
			return nil, fmt.Errorf("%s:1: no %q column in the header", path, need)
		}
	}
	out := &snapshot.ConntrackStat{}
	sums := map[string]*uint64{"drop": &out.Drop, "early_drop": &out.EarlyDrop, "insert_failed": &out.InsertFailed}
	for n, line := range lines[1:] {
		f := bytes.Fields(line)
		if len(f) == 0 {
			continue
		}
		if len(f) != len(hdr) {
			return nil, fmt.Errorf("%s:%d: %d values for %d columns", path, n+2, len(f), len(hdr))
		}
		for name, p := range sums {
			i, ok := col[name]
			if !ok {
				continue
			}
			v, ok := proctext.Hex(f[i])
			if !ok {
				return nil, fmt.Errorf("%s:%d: %s: %q is not hex", path, n+2, name, f[i])
			}
			*p += v
		}
		out.CPUs++
	}
	return out, nil
}
