package daemon

import "testing"

// TestMemoryLimit: the soft limit is the small host's 20 MiB floor, grows
// by 4 KiB per process (at 100,000 processes a look keeps more than 20 MiB
// alive, and a limit under the live heap makes the GC run without end),
// and never passes an eighth of the machine's memory, nor goes under the
// floor because of it.
func TestMemoryLimit(t *testing.T) {
	const MiB = 1 << 20
	for _, c := range []struct {
		procs    int
		memTotal uint64
		want     int64
	}{
		{0, 0, 20 * MiB},
		{300, 24 << 30, 20*MiB + 300*4096},
		{3_000, 24 << 30, 20*MiB + 3_000*4096},
		{100_000, 24 << 30, 20*MiB + 100_000*4096},
		{100_000, 1 << 30, 128 * MiB}, // an eighth of 1 GiB
		{100_000, 64 * MiB, 20 * MiB}, // the floor, however small the host
		{1_000_000, 0, 20*MiB + 1_000_000*4096},
	} {
		if got := MemoryLimit(c.procs, c.memTotal); got != c.want {
			t.Errorf("MemoryLimit(%d, %d) = %d MiB, want %d MiB", c.procs, c.memTotal, got/MiB, c.want/MiB)
		}
	}
	m := &memLimiter{}
	m.set(MemoryLimit(0, 0))
	m.update(100, 24<<30) // less than an eighth away: not set again
	if m.cur.Load() != 20*MiB {
		t.Errorf("a small move changed the limit to %d", m.cur.Load())
	}
	m.update(100_000, 24<<30)
	if m.cur.Load() != MemoryLimit(100_000, 24<<30) {
		t.Errorf("100,000 processes: limit %d", m.cur.Load())
	}
	off := &memLimiter{off: true}
	off.update(100_000, 0)
	if off.cur.Load() != 0 {
		t.Error("GOMEMLIMIT set, yet the limit was changed")
	}
}
