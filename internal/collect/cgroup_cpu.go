package collect

import (
	"github.com/picket-guard/picket/internal/cgroup"
	"github.com/picket-guard/picket/internal/snapshot"
)

// cpuController reads the CPU quota and its throttling (kernel/sched/core.c,
// fair.c): v2's cpu.max ("$MAX $PERIOD", systemd's CPUQuota=) and cpu.stat
// (usage_usec, nr_periods, nr_throttled, throttled_usec); v1's
// cpu.cfs_quota_us (-1: none), cpu.cfs_period_us and cpu.stat, whose
// throttled_time is in nanoseconds. A cgroup throttled in most periods is
// slow for its quota, not for the host's load.
type cpuController struct{}

func (cpuController) controller() string { return "cpu" }

var cpuStatKeys = []string{"usage_usec", "nr_periods", "nr_throttled", "throttled_usec"}

func (cpuController) read(d *cgroup.Dir, v cgroup.Version, cg *snapshot.Cgroup, full bool) error {
	if !full {
		return nil
	}
	var e firstErr
	if v == cgroup.V2 {
		if b, err := d.Read("cpu.max"); err == nil {
			q, p, unlimited, err := cgroup.ParseCPUMax(b)
			switch {
			case err != nil:
				e.add(err)
			case !unlimited:
				cg.CPUMax = &snapshot.CPUMax{QuotaUsec: q, PeriodUsec: p}
			}
		} else {
			e.add(err)
		}
	} else {
		var quota, period *uint64
		e.add(readMax(d, "cpu.cfs_quota_us", &quota))
		e.add(readUint(d, "cpu.cfs_period_us", &period))
		if quota != nil && period != nil {
			cg.CPUMax = &snapshot.CPUMax{QuotaUsec: *quota, PeriodUsec: *period}
		}
	}
	b, err := d.Read("cpu.stat")
	if err != nil {
		e.add(err)
		return e.err
	}
	stat := map[string]uint64{}
	cgroup.EachKey(b, func(k []byte, n uint64) {
		if v == cgroup.V1 && string(k) == "throttled_time" {
			stat["throttled_usec"] = n / 1000
			return
		}
		for _, key := range cpuStatKeys {
			if string(k) == key {
				stat[key] = n
			}
		}
	})
	if len(stat) > 0 {
		if cg.CPUStat == nil {
			cg.CPUStat = stat
		} else { // a hybrid host: v1's throttling and v2's usage
			for k, n := range stat {
				cg.CPUStat[k] = n
			}
		}
	}
	return e.err
}
