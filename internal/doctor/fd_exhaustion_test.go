package doctor

import (
	"slices"
	"strings"
	"testing"

	"github.com/picket-guard/picket/internal/snapshot"
)

func TestFDExhaustion(t *testing.T) {
	for _, tc := range []struct {
		name      string
		allocated int64
		max       int64
		proc      *snapshot.Process
		want      Severity
		near      []int
		fix       string
	}{
		{"quiet", 1000, 100000, nil, OK, nil, ""},
		{"file-max at 80%", 80000, 100000, nil, Warning, nil, "sysctl -w fs.file-max=160000"},
		{"file-max at 95%", 95000, 100000, nil, Critical, nil, "echo 'fs.file-max = 190000' > /etc/sysctl.d/60-file-max.conf"},
		{"a process at 80% of its limit", 1000, 100000, &snapshot.Process{PID: 77, User: "app", Comm: "leaky", FDs: 820, FDLimit: 1024}, Warning, []int{77}, "prlimit --pid 77 --nofile=1700:1700"},
		{"a process at its limit", 1000, 100000, &snapshot.Process{PID: 78, User: "app", Comm: "leaky", FDs: 1024, FDLimit: 1024}, Critical, []int{78}, "ls -l /proc/78/fd"},
		{"limit unknown", 1000, 100000, &snapshot.Process{PID: 79, User: "app", Comm: "x", FDs: 5000}, OK, nil, ""},
		{"fds unreadable", 1000, 100000, &snapshot.Process{PID: 80, User: "app", Comm: "x", FDs: -1, FDLimit: 8}, OK, nil, ""},
		{"huge file-max", 1 << 20, 9223372036854775807, nil, OK, nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := healthy()
			s.Kernel.FileNr = &snapshot.FileNr{Allocated: tc.allocated, Max: tc.max}
			if tc.proc != nil {
				setProcs(s, append(s.Processes.List, *tc.proc))
			}
			f := run(t, FDExhaustion{}, nil, s)
			wantSeverity(t, f, tc.want)
			v, _ := f.Evidence.Get("processes_near_limit")
			var got []int
			for _, p := range v.(FDRows) {
				got = append(got, p.PID)
			}
			if !slices.Equal(got, tc.near) {
				t.Errorf("near limit %v, want %v", got, tc.near)
			}
			if evInt(t, f, "allocated") != tc.allocated || evInt(t, f, "file_max") != tc.max {
				t.Errorf("evidence = %v", f.Evidence)
			}
			if tc.fix != "" && !strings.Contains(strings.Join(f.Fix, "\n"), tc.fix) {
				t.Errorf("fix lacks %q: %q", tc.fix, f.Fix)
			}
		})
	}
}

func TestFDExhaustionMissing(t *testing.T) {
	s := healthy()
	s.Kernel.FileNr = nil
	wantSeverity(t, run(t, FDExhaustion{}, nil, s), Unknown)
}
