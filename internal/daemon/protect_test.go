package daemon

import (
	"bufio"
	"log/slog"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/picket-guard/picket/internal/snapshot"
)

// rollup reads a field of /proc/self/smaps_rollup, in bytes.
func rollup(t *testing.T, field string) int64 {
	t.Helper()
	f, err := os.Open("/proc/self/smaps_rollup")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				t.Fatalf("smaps_rollup %s: %v", field, err)
			}
			return kb << 10
		}
	}
	t.Fatalf("smaps_rollup has no %s", field)
	return 0
}

func touched(n int) [][]byte {
	out := make([][]byte, 0, n)
	for i := 0; i < n; i++ {
		b := make([]byte, 1<<20)
		for j := 0; j < len(b); j += 4096 {
			b[j] = 1
		}
		out = append(out, b)
	}
	return out
}

// binarySmaps is what /proc/self/smaps says of each read-only mapping
// of the test binary (those binaryMappings finds): its resident size in
// bytes and whether it is VM_LOCKED ("lo" in VmFlags).
func binarySmaps(t *testing.T) (rss []int64, locked []bool) {
	t.Helper()
	b, err := os.ReadFile("/proc/self/smaps")
	if err != nil {
		t.Fatal(err)
	}
	text := map[uint64]bool{}
	for _, m := range binaryMappings() {
		text[m.start] = true
	}
	in := false
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) >= 5 && strings.Contains(f[0], "-") && !strings.HasSuffix(f[0], ":") {
			lo, _, _ := strings.Cut(f[0], "-")
			start, err := strconv.ParseUint(lo, 16, 64)
			in = err == nil && text[start]
			if in {
				rss, locked = append(rss, 0), append(locked, false)
			}
			continue
		}
		if !in {
			continue
		}
		switch {
		case len(f) == 3 && f[0] == "Rss:":
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			rss[len(rss)-1] = kb << 10
		case f[0] == "VmFlags:":
			locked[len(locked)-1] = slices.Contains(f[1:], "lo")
		}
	}
	return rss, locked
}

// lockedText says whether every read-only mapping of the test binary is
// still locked, and how many there are.
func lockedText(t *testing.T) (all bool, n int) {
	t.Helper()
	_, locked := binarySmaps(t)
	return !slices.Contains(locked, false), len(locked)
}

// binaryRSS is the resident size of the binary's read-only mappings, in
// bytes.
func binaryRSS(t *testing.T) int64 {
	t.Helper()
	rss, _ := binarySmaps(t)
	var sum int64
	for _, r := range rss {
		sum += r
	}
	return sum
}

// touchBinary maps every page of the binary's read-only mappings into
// this process, as a full look running its code and reading its tables
// does: reading /proc/self/mem faults each page in (get_user_pages).
func touchBinary(t *testing.T) {
	t.Helper()
	mem, err := os.Open("/proc/self/mem")
	if err != nil {
		t.Fatal(err)
	}
	defer mem.Close()
	var b [1]byte
	for _, m := range binaryMappings() {
		for a := m.start; a < m.end; a += 4096 {
			if _, err := mem.ReadAt(b[:], int64(a)); err != nil {
				t.Fatalf("reading the binary at %#x: %v", a, err)
			}
		}
	}
}

// TestSettle: with picket's memory locked, settle gives back the heap a
// busy look used, the lock holds afterwards (heap grown later is locked
// as it is touched), and every settle, not only the first, drops the
// pages of the binary a look faulted in and leaves its code locked.
func TestSettle(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mlockall needs CAP_IPC_LOCK: run as root")
	}
	log := slog.New(slog.DiscardHandler)
	if !lockMemory(log) {
		t.Fatal("mlockall refused to root")
	}
	t.Cleanup(func() { unix.Munlockall() })
	const mib = 1 << 20
	peak := touched(64)
	runtime.KeepAlive(peak)
	locked := rollup(t, "Locked")
	peak = nil
	settle(log, true, true)
	after := rollup(t, "Locked")
	if after > locked-48*mib {
		t.Errorf("locked %d MiB at the peak, %d MiB after settle: the free heap was not given back", locked/mib, after/mib)
	}
	if all, n := lockedText(t); !all || n == 0 {
		t.Errorf("after the warm-up's drop: %d mappings of the binary, all locked: %v", n, all)
	}
	grown := touched(16)
	if now := rollup(t, "Locked"); now < after+12*mib {
		t.Errorf("heap grown after settle: locked %d → %d MiB, want +16 MiB locked", after/mib, now/mib)
	}
	runtime.KeepAlive(grown)
	if anon, lk := rollup(t, "Anonymous"), rollup(t, "Locked"); lk < anon {
		t.Errorf("anonymous %d KiB but only %d KiB locked", anon>>10, lk>>10)
	}
	for look := 2; look <= 3; look++ {
		touchBinary(t)
		busy := binaryRSS(t)
		if busy < 4*mib {
			t.Fatalf("look %d: the binary's read-only mappings hold %d KiB after touching every page", look, busy>>10)
		}
		settle(log, true, true)
		if now := binaryRSS(t); now > busy/2 {
			t.Errorf("look %d: the binary's resident pages %d KiB → %d KiB after settle, want them dropped", look, busy>>10, now>>10)
		}
		if all, n := lockedText(t); !all || n == 0 {
			t.Errorf("look %d, after the drop: %d mappings of the binary, all locked: %v", look, n, all)
		}
	}
	// Short of memory (roomy false), the binary's pages stay.
	touchBinary(t)
	busy := binaryRSS(t)
	settle(log, true, false)
	if now := binaryRSS(t); now < busy*3/4 {
		t.Errorf("settle on a host short of memory dropped the binary's pages: %d KiB → %d KiB", busy>>10, now>>10)
	}
	if all, n := lockedText(t); !all || n == 0 {
		t.Errorf("after a settle without a drop: %d mappings of the binary, all locked: %v", n, all)
	}
}

// TestRoomy: the binary's pages are dropped after a full look only on a
// host with memory to spare.
func TestRoomy(t *testing.T) {
	const gib = 1 << 30
	psi := func(some float64) map[string]snapshot.PSI {
		return map[string]snapshot.PSI{"memory": {SomeAvg10: some}}
	}
	for _, c := range []struct {
		name string
		m    snapshot.Memory
		want bool
	}{
		{"half available, no PSI", snapshot.Memory{MemTotalBytes: 24 * gib, MemAvailableBytes: 12 * gib}, true},
		{"half available, calm", snapshot.Memory{MemTotalBytes: 24 * gib, MemAvailableBytes: 12 * gib, PSI: psi(0.4)}, true},
		{"a fifth available", snapshot.Memory{MemTotalBytes: 10 * gib, MemAvailableBytes: 2 * gib}, true},
		{"under a fifth", snapshot.Memory{MemTotalBytes: 10 * gib, MemAvailableBytes: 2*gib - 1}, false},
		{"stalled on memory", snapshot.Memory{MemTotalBytes: 24 * gib, MemAvailableBytes: 12 * gib, PSI: psi(5)}, false},
		{"estimated, roomy", snapshot.Memory{MemTotalBytes: 4 * gib, MemAvailableBytes: 2 * gib, MemAvailableSource: snapshot.MemAvailableZoneinfo}, true},
		{"unknown", snapshot.Memory{MemTotalBytes: 4 * gib, MemAvailableSource: snapshot.MemAvailableUnknown}, false},
		{"no meminfo", snapshot.Memory{}, false},
	} {
		if got := roomy(c.m); got != c.want {
			t.Errorf("%s: roomy = %v, want %v", c.name, got, c.want)
		}
	}
}
