package tui

import (
	"strings"
	"testing"

	"github.com/picket-guard/picket/internal/snapshot"
)

// TestCgroupSection: the units and cgroups near a limit get a bar each,
// nearest first, names escaped; a frame of the frame still fits.
func TestCgroupSection(t *testing.T) {
	u := func(v uint64) *uint64 { return &v }
	s := host(0, []snapshot.Group{grp("www", 33, "apache2", 498)}, nil)
	s.Cgroups = []snapshot.Cgroup{
		{Path: "/system.slice/apache2.service", Unit: "apache2.service", PidsCurrent: u(498), PidsMax: u(512), PidsEventsMax: u(37)},
		{Path: "/system.slice/cron.service", Unit: "cron.service", PidsCurrent: u(1), PidsMax: u(100)},
		{Path: "/user.slice/x\x1b[2J.scope", PidsCurrent: u(2), PidsMax: u(2)},
		{Path: "/system.slice/big.service", Unit: "big.service", PidsCurrent: u(1), MemoryCurrent: u(900 << 20), MemoryMax: u(1 << 30)},
	}
	m := NewModel()
	m.Update(s, nil, nil)
	if f := m.Render(80, 24, Style{Interactive: true}); !strings.Contains(f, "(the 2 nearest; picket snapshot lists them)") {
		t.Errorf("80×24 keeps two rows for the tables' sake:\n%s", f)
	}
	f := m.Render(80, 40, Style{Interactive: true})
	if strings.Contains(f, "\x1b") {
		t.Fatalf("raw escape in the frame:\n%s", f)
	}
	lines := strings.Split(f, "\n")
	if len(lines) > 40 {
		t.Errorf("%d lines", len(lines))
	}
	var at []int
	for i, l := range lines {
		for j, want := range []string{"UNITS/CGROUPS NEAR A LIMIT  3", "x\\x1b[2J.scope", "apache2.service", "big.service"} {
			if strings.Contains(l, want) {
				at = append(at, j*100+i)
			}
		}
		if strings.Contains(l, "cron.service") {
			t.Errorf("a cgroup far from its limit has a row: %q", l)
		}
	}
	if len(at) != 4 || !strings.Contains(f, "tasks 498/512 forks refused 37") || !strings.Contains(f, "memory 900M/1.0G") {
		t.Errorf("section:\n%s", f)
	}
}
