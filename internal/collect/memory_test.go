package collect

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/picket-guard/picket/internal/snapshot"
)

// meminfo2632 is /proc/meminfo as a 2.6.32 kernel prints it
// (fs/proc/meminfo.c of v2.6.32: no MemAvailable, which came in 3.14).
const meminfo2632 = `MemTotal:        1048576 kB
MemFree:          412000 kB
Buffers:           21000 kB
Cached:           230000 kB
SwapCached:            0 kB
Active:           420000 kB
Inactive:         150000 kB
Active(anon):     270000 kB
Inactive(anon):    50000 kB
Active(file):     150000 kB
Inactive(file):   100000 kB
Unevictable:           0 kB
Mlocked:               0 kB
SwapTotal:             0 kB
SwapFree:              0 kB
Dirty:               120 kB
Writeback:             0 kB
AnonPages:        319000 kB
Mapped:            40000 kB
Shmem:              1000 kB
Slab:              52000 kB
SReclaimable:      30000 kB
SUnreclaim:        22000 kB
KernelStack:        1200 kB
PageTables:         6000 kB
NFS_Unstable:          0 kB
Bounce:                0 kB
WritebackTmp:          0 kB
CommitLimit:      524288 kB
Committed_AS:     700000 kB
VmallocTotal:   34359738367 kB
VmallocUsed:       12000 kB
VmallocChunk:   34359700000 kB
HugePages_Total:       0
HugePages_Free:        0
HugePages_Rsvd:        0
HugePages_Surp:        0
Hugepagesize:       2048 kB
DirectMap4k:       10240 kB
DirectMap2M:     1038336 kB
`

// zoneinfo2632 is the start of each zone of /proc/zoneinfo as 2.6.32
// prints it (mm/vmstat.c, zoneinfo_show_print): low is in pages.
const zoneinfo2632 = `Node 0, zone      DMA
  pages free     3973
        min      65
        low      81
        high     97
        scanned  0
        spanned  4095
        present  3840
    nr_free_pages 3973
Node 0, zone    DMA32
  pages free     99050
        min      960
        low      1200
        high     1440
        scanned  0
        spanned  258048
        present  257024
    nr_free_pages 99050
`

// TestMemAvailableEstimate: a kernel before 3.14 has no MemAvailable;
// picket estimates it as the kernel does, from zoneinfo's low watermarks or
// from min_free_kbytes, and says so — never 0 — or says it is unknown.
func TestMemAvailableEstimate(t *testing.T) {
	for _, tc := range []struct {
		name     string
		files    map[string]string
		want     uint64
		source   string
		contains string
	}{
		// low = (81 + 1200) pages × 4 KiB = 5124 kB:
		// 412000-5124 + 250000-min(125000,5124) + 30000-min(15000,5124).
		{"zoneinfo", map[string]string{"meminfo": meminfo2632, "zoneinfo": zoneinfo2632}, 676628 << 10,
			snapshot.MemAvailableZoneinfo, "available 660.8 MiB of 1.0 GiB (estimated from zoneinfo: no MemAvailable before Linux 3.14)"},
		// low = 4096 × 5/4 = 5120 kB.
		{"min_free_kbytes", map[string]string{"meminfo": meminfo2632, "sys/vm/min_free_kbytes": "4096\n"}, 676640 << 10,
			snapshot.MemAvailableMinFree, "(estimated from min_free_kbytes"},
		{"nothing to estimate from", map[string]string{"meminfo": "MemTotal:        1048576 kB\nMemFree:          412000 kB\n"}, 0,
			snapshot.MemAvailableUnknown, "available unknown"},
		{"the kernel's own", map[string]string{"meminfo": "MemTotal:        1048576 kB\nMemFree:          412000 kB\nMemAvailable:     700000 kB\n"},
			700000 << 10, "", "available 683.6 MiB of 1.0 GiB\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			for p, s := range tc.files {
				full := filepath.Join(root, "proc", p)
				os.MkdirAll(filepath.Dir(full), 0o755)
				if err := os.WriteFile(full, []byte(s), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			c, err := New(Options{Root: root})
			if err != nil {
				t.Fatal(err)
			}
			snap := &snapshot.Snapshot{}
			if err := (meminfoSource{}).update(context.Background(), c, snap); err != nil {
				t.Fatal(err)
			}
			m := snap.Memory
			if m.MemAvailableBytes != tc.want || m.MemAvailableSource != tc.source {
				t.Errorf("available %d (%q), want %d (%q)", m.MemAvailableBytes, m.MemAvailableSource, tc.want, tc.source)
			}
			if tc.source != snapshot.MemAvailableUnknown && m.MemAvailableBytes == 0 {
				t.Error("an estimate of 0")
			}
			var b strings.Builder
			snapshot.WriteSummary(&b, snap, snapshot.SummaryOptions{})
			if !strings.Contains(b.String(), tc.contains) {
				t.Errorf("summary lacks %q:\n%s", tc.contains, b.String())
			}
		})
	}
}

// TestSockstatWithoutMem: a sockstat without mem fields (2.6.18's UDP
// line, and a TCP line printed without one) is read, and the missing
// field is marked as such rather than read as 0 pages.
func TestSockstatWithoutMem(t *testing.T) {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "proc/net"), 0o755)
	os.WriteFile(filepath.Join(root, "proc/net/sockstat"), []byte("sockets: used 54\nTCP: inuse 12 orphan 0 tw 4 alloc 12\nUDP: inuse 40\nRAW: inuse 0\nFRAG: inuse 0 memory 0\n"), 0o644)
	c, err := New(Options{Root: root})
	if err != nil {
		t.Fatal(err)
	}
	snap := &snapshot.Snapshot{}
	if err := (sockstatSource{}).update(context.Background(), c, snap); err != nil {
		t.Fatal(err)
	}
	st := snap.Kernel.Sockstat
	if st == nil || st.TCP.Inuse != 12 || st.TCP.Alloc != 12 || !st.TCP.NoMem || st.UDP.Inuse != 40 || st.SocketsUsed != 54 {
		t.Errorf("sockstat %+v", st)
	}
}
