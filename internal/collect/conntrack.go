package collect

import (
	"context"
	"errors"
	"io/fs"

	"github.com/picket-guard/picket/internal/snapshot"
)

// conntrackSource reads netfilter's connection table: nf_conntrack_count
// against nf_conntrack_max. The files exist only while the nf_conntrack
// module is loaded; without them there is no table to fill (ErrNoData).
type conntrackSource struct{}

func (conntrackSource) name() snapshot.Source { return snapshot.SourceConntrack }

func (conntrackSource) update(_ context.Context, c *Collector, snap *snapshot.Snapshot) error {
	cnt, cerr := readSysctl(c.proc, "net/netfilter/nf_conntrack_count")
	max, merr := readSysctl(c.proc, "net/netfilter/nf_conntrack_max")
	if errors.Is(cerr, fs.ErrNotExist) && errors.Is(merr, fs.ErrNotExist) {
		return ErrNoData
	}
	var errs []error
	for _, err := range []error{cerr, merr} {
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	if len(cnt) == 1 && len(max) == 1 {
		snap.Kernel.Conntrack = &snapshot.Conntrack{Count: cnt[0], Max: max[0]}
	}
	return errors.Join(errs...)
}
