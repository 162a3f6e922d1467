package doctor

import (
	"strings"
	"testing"

	"github.com/picket-guard/picket/internal/snapshot"
)

func TestConntrack(t *testing.T) {
	for _, tc := range []struct {
		name  string
		ct    *snapshot.Conntrack
		errs  []string
		want  Severity
		fix   string
		title string
	}{
		{"not loaded is ok", nil, nil, OK, "", ""},
		{"not loaded, other limits unreadable", nil, []string{"limits: /proc/sys/kernel/pid_max:1: field 1: invalid syntax"}, OK, "", ""},
		{"loaded but unreadable", nil, []string{"conntrack: /proc/sys/net/netfilter/nf_conntrack_max:1: field 1: invalid syntax"}, Unknown, "", ""},
		{"a limits error naming netfilter is not conntrack's", nil, []string{"limits: /proc/sys/net/netfilter/nf_conntrack_max:1: field 1: invalid syntax"}, OK, "", ""},
		{"quiet", &snapshot.Conntrack{Count: 1200, Max: 262144}, nil, OK, "", "1200 tracked connections, 0.5% of nf_conntrack_max 262144"},
		{"80%", &snapshot.Conntrack{Count: 209716, Max: 262144}, nil, Warning, "sysctl -w net.netfilter.nf_conntrack_max=420000",
			"conntrack table 80.0% full (209716 of 262144): new connections are dropped when it fills"},
		{"full", &snapshot.Conntrack{Count: 262144, Max: 262144}, nil, Critical, "/etc/sysctl.d/60-conntrack.conf",
			"conntrack table 100.0% full (262144 of 262144): new connections are dropped when it fills"},
		{"max 0", &snapshot.Conntrack{Count: 5, Max: 0}, nil, Unknown, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := healthy()
			s.Kernel.Conntrack = tc.ct
			s.Errors = tc.errs
			f := run(t, Conntrack{}, nil, s)
			wantSeverity(t, f, tc.want)
			loaded, _ := f.Evidence.Get("loaded")
			if (tc.ct != nil || tc.want == Unknown) != (loaded == true) {
				t.Errorf("loaded = %v", loaded)
			}
			if tc.title != "" && f.Title != tc.title {
				t.Errorf("title %q, want %q", f.Title, tc.title)
			}
			if tc.fix != "" && !strings.Contains(strings.Join(f.Fix, "\n"), tc.fix) {
				t.Errorf("fix lacks %q: %q", tc.fix, f.Fix)
			}
		})
	}
}
