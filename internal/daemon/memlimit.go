package daemon

import (
	"os"
	"runtime/debug"
	"sync/atomic"
)

// The Go runtime's soft memory limit makes the collector work harder as
// the heap nears it instead of waiting for GOGC's doubling, which keeps a
// small host's picket small. A fixed 20 MiB did that on a host of a few
// thousand processes, but one look at 100,000 processes holds more than
// that alive (two snapshots, the rules' rows), and a limit below the live
// heap makes the GC run without end: 18 s per look, for no memory saved.
// So the limit follows the host: a floor, plus a budget per process seen,
// never more than a share of the machine's memory.
const (
	memLimitFloor   = 20 << 20 // the small host's budget, as before
	memPerProcess   = 4 << 10  // heap per process of the last look: ~3× what the look keeps live (bench-scale)
	memShareOfTotal = 8        // at most MemTotal/8, whatever the process count
)

// MemoryLimit is the soft limit for a host of procs processes with
// memTotal bytes of RAM (0: unknown).
func MemoryLimit(procs int, memTotal uint64) int64 {
	limit := int64(memLimitFloor) + int64(procs)*memPerProcess
	if memTotal > 0 {
		limit = min(limit, int64(memTotal/memShareOfTotal))
	}
	return max(limit, memLimitFloor)
}

// memLimiter sets the limit after each look, when it moves by more than an
// eighth (SetMemoryLimit is cheap, but there is no need to call it every
// second). GOMEMLIMIT in the environment wins, as the runtime documents.
type memLimiter struct {
	off bool
	cur atomic.Int64
}

func newMemLimiter() *memLimiter {
	m := &memLimiter{off: os.Getenv("GOMEMLIMIT") != ""}
	if !m.off {
		m.set(MemoryLimit(0, 0))
	}
	return m
}

func (m *memLimiter) update(procs int, memTotal uint64) {
	if m == nil || m.off {
		return
	}
	next := MemoryLimit(procs, memTotal)
	if cur := m.cur.Load(); next > cur+cur/8 || next < cur-cur/8 {
		m.set(next)
	}
}

func (m *memLimiter) set(n int64) {
	m.cur.Store(n)
	debug.SetMemoryLimit(n)
}
