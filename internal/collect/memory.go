package collect

import (
	"context"
	"errors"
	"io/fs"

	"github.com/picket-guard/picket/internal/snapshot"
)

// meminfoSource reads /proc/meminfo through procfs: the numbers that say
// whether a box is about to swap itself unresponsive.
type meminfoSource struct{}

func (meminfoSource) name() snapshot.Source { return snapshot.SourceMeminfo }

func (meminfoSource) update(_ context.Context, c *Collector, snap *snapshot.Snapshot) error {
	mi, err := c.fs.Meminfo()
	if errors.Is(err, fs.ErrNotExist) {
		return ErrNoData
	}
	if err != nil {
		return err
	}
	m := &snap.Memory
	m.MemTotalBytes = u64(mi.MemTotalBytes)
	m.MemFreeBytes = u64(mi.MemFreeBytes)
	m.MemAvailableBytes = u64(mi.MemAvailableBytes)
	m.BuffersBytes = u64(mi.BuffersBytes)
	m.CachedBytes = u64(mi.CachedBytes)
	m.SwapTotalBytes = u64(mi.SwapTotalBytes)
	m.SwapFreeBytes = u64(mi.SwapFreeBytes)
	m.CommittedASBytes = u64(mi.CommittedASBytes)
	m.CommitLimitBytes = u64(mi.CommitLimitBytes)
	return nil
}

func u64(p *uint64) uint64 {
	if p == nil {
		return 0
	}
	return *p
}

// psiSource reads /proc/pressure/{memory,cpu,io} through procfs. Kernels
// without CONFIG_PSI, or booted with psi=0, have no such files (or refuse to
// open them with EOPNOTSUPP): then only this part is empty.
type psiSource struct{}

func (psiSource) name() snapshot.Source { return snapshot.SourcePSI }

func (psiSource) update(_ context.Context, c *Collector, snap *snapshot.Snapshot) error {
	out := map[string]snapshot.PSI{}
	var errs []error
	for _, res := range []string{"memory", "cpu", "io"} {
		st, err := c.fs.PSIStatsForResource(res)
		if err != nil {
			// procfs wraps open errors; "not supported" (psi=0) is as good
			// as missing.
			if !errors.Is(err, fs.ErrNotExist) && !isNotSupported(err) {
				errs = append(errs, err)
			}
			continue
		}
		var p snapshot.PSI
		if st.Some != nil {
			p.SomeAvg10, p.SomeAvg60, p.SomeAvg300, p.SomeTotal = st.Some.Avg10, st.Some.Avg60, st.Some.Avg300, st.Some.Total
		}
		if st.Full != nil {
			p.HasFull = true
			p.FullAvg10, p.FullAvg60, p.FullAvg300, p.FullTotal = st.Full.Avg10, st.Full.Avg60, st.Full.Avg300, st.Full.Total
		}
		out[res] = p
	}
	if len(out) > 0 {
		snap.Memory.PSI = out
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	if len(out) == 0 {
		return ErrNoData
	}
	return nil
}
