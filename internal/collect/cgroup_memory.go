package collect

import (
	"github.com/picket-guard/picket/internal/cgroup"
	"github.com/picket-guard/picket/internal/snapshot"
)

// memoryController reads the memory controller (mm/memcontrol.c).
//
// v2: memory.current, memory.max (systemd's MemoryMax=), memory.high
// (MemoryHigh=, where the kernel throttles and reclaims before max),
// memory.peak, memory.events (high: times over high; max: times at max,
// reclaiming; oom; oom_kill), memory.stat's anon, file, sock, shmem and
// inactive_file, and memory.swap.current and .max.
//
// v1 (Documentation/admin-guide/cgroup-v1/memory.rst): memory.usage_in_bytes,
// .limit_in_bytes, .max_usage_in_bytes, .failcnt (charges refused at the
// limit: the beancounters' failcnt of today), memory.oom_control's
// under_oom and oom_kill, memory.stat's total_* lines, and
// memory.kmem.tcp.* (TCP buffers charged to the cgroup).
type memoryController struct{}

func (memoryController) controller() string { return "memory" }

// memoryStatKeys are the memory.stat lines kept, by their v2 names; v1
// prints them as total_rss, total_cache, total_shmem, total_inactive_file
// (hierarchical, as v2's are).
var memoryStatKeys = []struct{ v2, v1 string }{
	{"anon", "total_rss"}, {"file", "total_cache"}, {"sock", ""}, {"shmem", "total_shmem"},
	{"inactive_file", "total_inactive_file"},
}

// A light look reads memory.stat only for a cgroup with a limit (its
// working set is what the limit is graded on) and skips the peaks, swap and
// TCP buffers.
func (memoryController) read(d *cgroup.Dir, v cgroup.Version, cg *snapshot.Cgroup, full bool) error {
	var e firstErr
	if v == cgroup.V2 {
		e.add(readUint(d, "memory.current", &cg.MemoryCurrent))
		e.add(readMax(d, "memory.max", &cg.MemoryMax))
		e.add(readMax(d, "memory.high", &cg.MemoryHigh))
		if full {
			e.add(readUint(d, "memory.peak", &cg.MemoryPeak))
			e.add(readUint(d, "memory.swap.current", &cg.SwapCurrent))
			e.add(readMax(d, "memory.swap.max", &cg.SwapMax))
		}
		if b, err := d.Read("memory.events"); err == nil {
			cg.MemoryEvents = map[string]uint64{}
			cgroup.EachKey(b, func(k []byte, n uint64) { cg.MemoryEvents[string(k)] = n })
			if n, ok := cg.MemoryEvents["oom_kill"]; ok {
				cg.OOMKill = &n
			}
		} else {
			e.add(err)
		}
	} else {
		e.add(readUint(d, "memory.usage_in_bytes", &cg.MemoryCurrent))
		e.add(readMax(d, "memory.limit_in_bytes", &cg.MemoryMax))
		e.add(readUint(d, "memory.failcnt", &cg.MemoryFailcnt))
		if full {
			e.add(readUint(d, "memory.max_usage_in_bytes", &cg.MemoryPeak))
		}
		if b, err := d.Read("memory.oom_control"); err == nil {
			kv := cgroup.Keyed(b, "under_oom", "oom_kill")
			cg.UnderOOM = kv["under_oom"] == 1
			if n, ok := kv["oom_kill"]; ok {
				cg.OOMKill = &n
			}
		} else {
			e.add(err)
		}
		if full {
			e.add(readKmemTCP(d, cg))
		}
	}
	if !full && cg.MemoryMax == nil && cg.MemoryHigh == nil {
		return e.err
	}
	b, err := d.Read("memory.stat")
	if err != nil {
		e.add(err)
		return e.err
	}
	stat := map[string]uint64{}
	cgroup.EachKey(b, func(k []byte, n uint64) {
		for _, sk := range memoryStatKeys {
			if (v == cgroup.V2 && string(k) == sk.v2) || (v == cgroup.V1 && sk.v1 != "" && string(k) == sk.v1) {
				stat[sk.v2] = n
			}
		}
	})
	if len(stat) > 0 {
		cg.MemoryStat = stat
	}
	return e.err
}

// readKmemTCP reads v1's memory.kmem.tcp.{usage_in_bytes,limit_in_bytes,
// failcnt,max_usage_in_bytes}; absent on kernels without kmem accounting.
func readKmemTCP(d *cgroup.Dir, cg *snapshot.Cgroup) error {
	var k snapshot.KmemTCP
	var usage, failcnt, maxUsage *uint64
	if err := readUint(d, "memory.kmem.tcp.usage_in_bytes", &usage); err != nil {
		return err
	}
	var e firstErr
	e.add(readMax(d, "memory.kmem.tcp.limit_in_bytes", &k.Limit))
	e.add(readUint(d, "memory.kmem.tcp.failcnt", &failcnt))
	e.add(readUint(d, "memory.kmem.tcp.max_usage_in_bytes", &maxUsage))
	k.Usage = *usage
	if failcnt != nil {
		k.Failcnt = *failcnt
	}
	if maxUsage != nil {
		k.MaxUsage = *maxUsage
	}
	cg.KmemTCP = &k
	return e.err
}
