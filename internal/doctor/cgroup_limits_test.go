package doctor

import (
	"strings"
	"testing"
	"time"

	"github.com/picket-guard/picket/internal/snapshot"
)

func u(v uint64) *uint64 { return &v }

// withCgroups is healthy() with a systemd host's cgroups: apache2.service
// under TasksMax=512 with its processes in it.
func withCgroups(pids, events, oomKill uint64) *snapshot.Snapshot {
	return withApaches(40, pids, events, oomKill)
}

func withApaches(n int, pids, events, oomKill uint64) *snapshot.Snapshot {
	s := healthy()
	s.CgroupLayout = &snapshot.CgroupLayout{Mode: "unified", Unified: "/sys/fs/cgroup"}
	s.Cgroups = []snapshot.Cgroup{
		{Path: "/", Hierarchies: []string{"unified"}},
		{Path: "/system.slice", Unit: "system.slice", PidsCurrent: u(pids + 10)},
		{Path: "/system.slice/apache2.service", Unit: "apache2.service", PidsCurrent: u(pids), PidsMax: u(512),
			PidsEventsMax: u(events), MemoryCurrent: u(1 << 30), MemoryMax: u(8 << 30), OOMKill: u(oomKill),
			MemoryEvents: map[string]uint64{"max": 0, "oom_kill": oomKill}, Processes: 40},
		{Path: "/system.slice/cron.service", Unit: "cron.service", PidsCurrent: u(1)},
	}
	list := append(s.Processes.List, many(n, 1000, 1, "www-data", 33, "apache2", 50<<20)...)
	for i := range list {
		if list[i].Comm == "apache2" {
			list[i].Cgroup, list[i].Unit = "/system.slice/apache2.service", "apache2.service"
		}
	}
	setProcs(s, list)
	return s
}

func TestCgroupLimits(t *testing.T) {
	c := CgroupLimits{}
	for _, tc := range []struct {
		name      string
		prev, cur *snapshot.Snapshot
		want      Severity
		title     string
	}{
		{"no cgroups", nil, healthy(), OK, "no cgroup hierarchy mounted"},
		{"far from the limit", nil, withCgroups(100, 0, 0), OK, "1 cgroups with a limit, none near it"},
		{"near pids.max", nil, withCgroups(420, 0, 0), Warning, "unit apache2.service 420 of 512 tasks (82.0% of pids.max) (apache2)"},
		{"at pids.max", nil, withCgroups(510, 0, 0), Critical, "unit apache2.service 510 of 512 tasks"},
		{"old refusals, one look", nil, withCgroups(100, 37, 0), Warning, "refused 37 forks at pids.max since it was created"},
		{"old refusals, not now", withCgroups(100, 37, 0), withCgroups(100, 37, 0), OK, ""},
		{"refusing now", withCgroups(500, 30, 0), withCgroups(512, 37, 0), Critical, "unit apache2.service refused 7 forks at pids.max 512 since the last look"},
		{"oom kill now", withCgroups(100, 0, 1), withCgroups(100, 0, 2), Critical, "1 OOM kills since the last look"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := run(t, c, tc.prev, tc.cur)
			wantSeverity(t, f, tc.want)
			if g := Grade(f.Metrics); g != f.Severity {
				t.Errorf("metrics grade %s: %s", g, Perfdata(f.Metrics))
			}
			if !strings.Contains(f.Title, tc.title) {
				t.Errorf("title %q, want %q in it", f.Title, tc.title)
			}
			if f.Severity == OK {
				return
			}
			fix := strings.Join(f.Fix, "\n")
			if !strings.Contains(fix, "systemctl set-property apache2.service ") || !strings.Contains(fix, "MaxRequestWorkers") {
				t.Errorf("fix:\n%s", fix)
			}
			rows, _ := f.Evidence.Get("rows")
			if r := rows.(CgroupRows); len(r) != 1 || r[0].TopCommands != "apache2×40" || r[0].Path != "/system.slice/apache2.service" {
				t.Errorf("rows %+v", r)
			}
		})
	}
}

// TestCgroupLimitsV1 grades v1's memory.failcnt and OOM kills.
func TestCgroupLimitsV1(t *testing.T) {
	mk := func(failcnt uint64) *snapshot.Snapshot {
		s := healthy()
		s.CgroupLayout = &snapshot.CgroupLayout{Mode: "hybrid"}
		s.Cgroups = []snapshot.Cgroup{{Path: "/pkt-mem", MemoryCurrent: u(10 << 20), MemoryMax: u(64 << 20), MemoryFailcnt: u(failcnt), OOMKill: u(0)}}
		return s
	}
	f := run(t, CgroupLimits{}, mk(10), mk(25))
	wantSeverity(t, f, Warning)
	if !strings.Contains(f.Title, "cgroup /pkt-mem memory.failcnt 25") {
		t.Errorf("title %q", f.Title)
	}
}

// TestCgroupLimitsHostile: names a container runtime or a user chose are
// escaped in the title and the explanation, and never reach a fix line.
func TestCgroupLimitsHostile(t *testing.T) {
	s := healthy()
	s.CgroupLayout = &snapshot.CgroupLayout{Mode: "unified"}
	evil := "/user.slice/user-1000.slice/user@1000.service/app.slice/x$(reboot)\x1b[2J.scope"
	s.Cgroups = []snapshot.Cgroup{{Path: evil, Unit: "app.slice", UserUnitOf: "1000", PidsCurrent: u(2), PidsMax: u(2)}}
	list := s.Processes.List
	list = append(list, snapshot.Process{PID: 99, Comm: "\x1b[31mevil", Cgroup: evil, Threads: 1})
	setProcs(s, list)
	f := run(t, CgroupLimits{}, nil, s)
	wantSeverity(t, f, Critical)
	for _, text := range []string{f.Title, f.Explanation} {
		if strings.ContainsAny(text, "\x1b") {
			t.Errorf("raw escape in %q", text)
		}
	}
	for _, l := range f.Fix {
		if strings.Contains(l, "reboot") || strings.Contains(l, "evil") {
			t.Errorf("fix line carries the name: %q", l)
		}
	}
	// A user unit's fix says it belongs to the user manager.
	s.Cgroups[0] = snapshot.Cgroup{Path: "/user.slice/user-1000.slice/user@1000.service/app.slice/build.service", Unit: "build.service",
		UserUnitOf: "1000", PidsCurrent: u(2), PidsMax: u(2)}
	f = run(t, CgroupLimits{}, nil, s)
	if fix := strings.Join(f.Fix, "\n"); !strings.Contains(fix, "systemctl --user set-property build.service TasksMax=") {
		t.Errorf("user unit fix:\n%s", fix)
	}
}

// TestCgroupLimitsFixtures: the v2 and hybrid fixture trees.
func TestCgroupLimitsFixtures(t *testing.T) {
	for _, tc := range []struct{ root, want string }{
		{"../../testdata/fixtures/cgroup-v2", "unit apache2.service 498 of 512 tasks (97.3% of pids.max)"},
		{"../../testdata/fixtures/cgroup-hybrid", "unit postfix.service 100 of 100 tasks (100.0% of pids.max)"},
	} {
		s := collectAt(t, tc.root, t0)
		f := run(t, CgroupLimits{}, nil, s)
		wantSeverity(t, f, Critical)
		if !strings.Contains(f.Title, tc.want) {
			t.Errorf("%s: title %q", tc.root, f.Title)
		}
		if g := Grade(f.Metrics); g != f.Severity {
			t.Errorf("%s: metrics grade %s: %s", tc.root, g, Perfdata(f.Metrics))
		}
	}
	_ = time.Second
}

// TestStormNamesUnit: process-storm names the unit of the storm's group.
func TestStormNamesUnit(t *testing.T) {
	s := withApaches(60, 100, 0, 0)
	f := run(t, ProcessStorm{}, nil, s)
	if !strings.Contains(f.Title, "in unit apache2.service") || !strings.Contains(f.Explanation, "systemd unit apache2.service") {
		t.Errorf("title %q", f.Title)
	}
}
