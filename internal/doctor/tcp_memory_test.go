package doctor

import (
	"strings"
	"testing"
)

func TestTCPMemory(t *testing.T) {
	storyMem := []int64{3093984, 4125312, 6187968}
	for _, tc := range []struct {
		name   string
		pages  int
		tcpMem []int64
		ram    uint64
		want   Severity
		fix    string
	}{
		{"Out of socket memory case 1", 1894, storyMem, 32 << 30, OK, ""},
		{"at pressure", 4125312, storyMem, 32 << 30, OK, ""},
		{"above pressure", 4125313, storyMem, 32 << 30, Warning, "# a tcp_mem high of"},
		{"at high", 6187968, storyMem, 32 << 30, Warning, "# a tcp_mem high of"},
		{"Out of socket memory case 2: above high", 6250000, storyMem, 32 << 30, Critical, "more than half of RAM"},
		{"above high, RAM to spare", 2100, []int64{1000, 1500, 2000}, 8 << 30, Critical, "sysctl -w net.ipv4.tcp_mem='2100 2800 4200'"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := healthy()
			s.Kernel.Sockstat.TCP.MemPages = tc.pages
			s.Kernel.TCPMemPages = tc.tcpMem
			s.Memory.MemTotalBytes = tc.ram
			f := run(t, TCPMemory{}, nil, s)
			wantSeverity(t, f, tc.want)
			if evInt(t, f, "mem_pages") != int64(tc.pages) || evInt(t, f, "mem_bytes") != int64(tc.pages)*4096 ||
				evInt(t, f, "tcp_mem_high_pages") != tc.tcpMem[2] || evInt(t, f, "tcp_mem_high_bytes") != tc.tcpMem[2]*4096 ||
				evInt(t, f, "page_size") != 4096 {
				t.Errorf("evidence = %v", f.Evidence)
			}
			if tc.fix == "" {
				if len(f.Fix) != 0 {
					t.Errorf("fix on ok: %v", f.Fix)
				}
				return
			}
			if !strings.Contains(strings.Join(f.Fix, "\n"), tc.fix) {
				t.Errorf("fix lacks %q: %q", tc.fix, f.Fix)
			}
		})
	}
}

// TestTCPMemoryPageSize: bytes follow the snapshot's page size (64 KiB
// pages on some arm64 and ppc64 kernels).
func TestTCPMemoryPageSize(t *testing.T) {
	s := healthy()
	s.Kernel.PageSize = 65536
	s.Kernel.Sockstat.TCP.MemPages = 10
	f := run(t, TCPMemory{}, nil, s)
	if evInt(t, f, "mem_bytes") != 655360 || !strings.Contains(f.Title, "10 pages (640.0 KiB)") {
		t.Errorf("64 KiB pages: %v / %q", f.Evidence, f.Title)
	}
}

func TestTCPMemoryMissing(t *testing.T) {
	s := healthy()
	s.Kernel.TCPMemPages = nil
	wantSeverity(t, run(t, TCPMemory{}, nil, s), Unknown)
	s = healthy()
	s.Kernel.Sockstat = nil
	wantSeverity(t, run(t, TCPMemory{}, nil, s), Unknown)
	// A sockstat whose TCP line has no mem field: unknown, not "0 pages".
	s = healthy()
	s.Kernel.Sockstat.TCP.MemPages, s.Kernel.Sockstat.TCP.NoMem = 0, true
	f := run(t, TCPMemory{}, nil, s)
	wantSeverity(t, f, Unknown)
	if !strings.Contains(f.Explanation, "no mem field") {
		t.Errorf("explanation: %s", f.Explanation)
	}
}
