package collect

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/prometheus/procfs"

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
	if mi.MemAvailableBytes != nil {
		m.MemAvailableBytes = *mi.MemAvailableBytes
	} else {
		m.MemAvailableBytes, m.MemAvailableSource = c.estimateAvailable(mi)
	}
	m.BuffersBytes = u64(mi.BuffersBytes)
	m.CachedBytes = u64(mi.CachedBytes)
	m.SwapTotalBytes = u64(mi.SwapTotalBytes)
	m.SwapFreeBytes = u64(mi.SwapFreeBytes)
	m.CommittedASBytes = u64(mi.CommittedASBytes)
	m.CommitLimitBytes = u64(mi.CommitLimitBytes)
	return nil
}

// estimateAvailable is MemAvailable for kernels before 3.14, which lack
// it: the estimate the kernel itself then introduced (commit 34e431b0ae39,
// fs/proc/meminfo.c in 3.14; si_mem_available() in mm/page_alloc.c since
// 4.6), from the same counters. Free memory cannot be taken below the
// zones' low watermarks before the kernel starts swapping; at least half
// the file page cache, or a low watermark's worth, must stay; and so must
// part of the reclaimable slab:
//
//	available = MemFree - low
//	          + file - min(file/2, low)
//	          + SReclaimable - min(SReclaimable/2, low)
//
// where file is Active(file) + Inactive(file) and low the sum of every
// zone's "low" in /proc/zoneinfo. Without zoneinfo (some containers hide
// it) low is vm.min_free_kbytes × 5/4, as procps's free does: each zone's
// low watermark is its min plus a quarter (__setup_per_zone_wmarks).
// Without the file LRU lines (before 2.6.28) there is nothing to estimate
// from: unknown, never 0.
func (c *Collector) estimateAvailable(mi procfs.Meminfo) (uint64, string) {
	if mi.MemFree == nil || mi.ActiveFile == nil || mi.InactiveFile == nil {
		return 0, snapshot.MemAvailableUnknown
	}
	var lowKB int64
	source := snapshot.MemAvailableZoneinfo
	zones, err := c.fs.Zoneinfo()
	if err == nil && len(zones) > 0 {
		for _, z := range zones {
			if z.Low != nil {
				lowKB += *z.Low * int64(os.Getpagesize()) / 1024
			}
		}
	} else {
		b, err := os.ReadFile(filepath.Join(c.proc, "sys/vm/min_free_kbytes"))
		if err != nil {
			return 0, snapshot.MemAvailableUnknown
		}
		minFree, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
		if err != nil {
			return 0, snapshot.MemAvailableUnknown
		}
		lowKB, source = minFree*5/4, snapshot.MemAvailableMinFree
	}
	avail := int64(*mi.MemFree) - lowKB
	file := int64(*mi.ActiveFile + *mi.InactiveFile)
	avail += file - min(file/2, lowKB)
	if mi.SReclaimable != nil {
		slab := int64(*mi.SReclaimable)
		avail += slab - min(slab/2, lowKB)
	}
	return uint64(max(avail, 0)) * 1024, source
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
