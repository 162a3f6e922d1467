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

// lockedText says whether every read-only mapping of the test binary is
// still VM_LOCKED ("lo" in smaps' VmFlags), and how many there are.
func lockedText(t *testing.T) (all bool, n int) {
	t.Helper()
	b, err := os.ReadFile("/proc/self/smaps")
	if err != nil {
		t.Fatal(err)
	}
	text := map[uint64]bool{}
	for _, m := range binaryMappings() {
		text[m.start] = true
	}
	all, in := true, false
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) >= 5 && strings.Contains(f[0], "-") && !strings.HasSuffix(f[0], ":") {
			lo, _, _ := strings.Cut(f[0], "-")
			start, err := strconv.ParseUint(lo, 16, 64)
			in = err == nil && text[start]
			if in {
				n++
			}
		}
		if in && strings.HasPrefix(l, "VmFlags:") && !slices.Contains(f[1:], "lo") {
			all = false
		}
	}
	return all, n
}

// TestSettle: with picket's memory locked, settle gives back the heap a
// busy look used, the lock holds afterwards (heap grown later is locked
// as it is touched), and the warm-up's drop of the binary's pages leaves
// its code locked.
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
}
