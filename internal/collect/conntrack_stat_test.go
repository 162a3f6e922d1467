package collect

import (
	"os"
	"strings"
	"testing"

	"github.com/picket-guard/picket/internal/snapshot"
)

func TestConntrackStatFixture(t *testing.T) {
	for _, tc := range []struct {
		root string
		want snapshot.ConntrackStat
	}{
		// Linux 6.18's columns, two CPUs.
		{"testdata/counters", snapshot.ConntrackStat{Drop: 0x1a + 0x10, EarlyDrop: 0x100 + 0x0f, InsertFailed: 1, CPUs: 2}},
		// 2.6.32's: "searched" where "clashres" is now, no search_restart.
		{"testdata/counters-old", snapshot.ConntrackStat{Drop: 2, EarlyDrop: 3, CPUs: 1}},
	} {
		s, err := collectRoot(t, tc.root)
		if err != nil {
			t.Fatal(err)
		}
		if s.Kernel.ConntrackStat == nil || *s.Kernel.ConntrackStat != tc.want {
			t.Errorf("%s: conntrack stat = %+v, want %+v", tc.root, s.Kernel.ConntrackStat, tc.want)
		}
	}
}

func TestParseConntrackStatErrors(t *testing.T) {
	for in, want := range map[string]string{
		"entries drop\n00000001 00000002\n":                     `nf_conntrack:1: no "early_drop" column`,
		"entries drop early_drop\n00000001 00000002\n":          "nf_conntrack:2: 2 values for 3 columns",
		"entries drop early_drop\n00000001 0000000g 00000001\n": "nf_conntrack:2: drop",
	} {
		_, err := parseConntrackStat([]byte(in), "nf_conntrack")
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: err = %v, want %q", in, err, want)
		}
	}
}

func TestConntrackStatLive(t *testing.T) {
	b, err := os.ReadFile("/proc/net/stat/nf_conntrack")
	if err != nil {
		t.Skipf("nf_conntrack not loaded here: %v", err)
	}
	st, err := parseConntrackStat(b, "/proc/net/stat/nf_conntrack")
	if err != nil {
		t.Fatal(err)
	}
	if st.CPUs == 0 {
		t.Errorf("no CPU lines in %q", b)
	}
}

func FuzzParseConntrackStat(f *testing.F) {
	for _, p := range []string{"testdata/counters/proc/net/stat/nf_conntrack", "testdata/counters-old/proc/net/stat/nf_conntrack"} {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		st, err := parseConntrackStat(b, "nf_conntrack")
		if err == nil && st == nil {
			t.Fatal("nil without an error")
		}
	})
}
