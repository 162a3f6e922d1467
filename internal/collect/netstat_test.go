package collect

import (
	"os"
	"strings"
	"testing"

	"github.com/picket-guard/picket/internal/snapshot"
)

func TestNetstatFixture(t *testing.T) {
	s, err := collectRoot(t, "testdata/counters")
	if err != nil {
		t.Fatal(err)
	}
	want := snapshot.Netstat{AbortOnMemory: 1412, AbortOnTimeout: 37, ListenOverflows: 210, ListenDrops: 215,
		ReqQFullDoCookies: 9, ReqQFullDrop: 3, TimeWaitOverflow: 5, MemoryPressures: 2}
	if s.Kernel.Netstat == nil || *s.Kernel.Netstat != want {
		t.Errorf("netstat = %+v, want %+v", s.Kernel.Netstat, want)
	}
	// A 2.6 kernel's file: fewer counters, the ones it has are read.
	s, err = collectRoot(t, "testdata/counters-old")
	if err != nil {
		t.Fatal(err)
	}
	if n := s.Kernel.Netstat; n == nil || n.AbortOnMemory != 21564 || n.ListenOverflows != 4 || n.TimeWaitOverflow != 0 || n.MemoryPressures != 1 {
		t.Errorf("old netstat = %+v", n)
	}
	// None at all: no part, no error.
	empty := t.TempDir()
	os.Mkdir(empty+"/proc", 0o755)
	s, _ = collectRoot(t, empty)
	if s.Kernel.Netstat != nil || s.Kernel.ConntrackStat != nil || len(s.Errors) != 0 {
		t.Errorf("without the files: netstat %+v, conntrack stat %+v, errors %v", s.Kernel.Netstat, s.Kernel.ConntrackStat, s.Errors)
	}
}

func TestParseNetstatErrors(t *testing.T) {
	for in, want := range map[string]string{
		"TcpExt: A B\n":                         "netstat:1: a names line without its values line",
		"TcpExt: A B\nIpExt: 1 2\n":             "netstat:2: want",
		"TcpExt: A B\nTcpExt: 1\n":              "netstat:2: 1 values for 2 names",
		"TcpExt: TCPAbortOnMemory\nTcpExt: x\n": "netstat:2: TCPAbortOnMemory",
	} {
		_, err := parseNetstat([]byte(in), "netstat")
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: err = %v, want %q", in, err, want)
		}
	}
}

func TestNetstatLive(t *testing.T) {
	b, err := os.ReadFile("/proc/net/netstat")
	if err != nil {
		t.Skipf("no /proc/net/netstat: %v", err)
	}
	if _, err := parseNetstat(b, "/proc/net/netstat"); err != nil {
		t.Fatal(err)
	}
}

func FuzzParseNetstat(f *testing.F) {
	for _, p := range []string{"testdata/counters/proc/net/netstat", "testdata/counters-old/proc/net/netstat"} {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		n, err := parseNetstat(b, "netstat")
		if err == nil && n == nil {
			t.Fatal("nil without an error")
		}
	})
}
