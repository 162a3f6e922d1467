package collect

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/picket-guard/picket/internal/snapshot"
	"github.com/picket-guard/picket/internal/testkit"
)

const (
	fixtureCgroupV2     = "../../testdata/fixtures/cgroup-v2"
	fixtureCgroupHybrid = "../../testdata/fixtures/cgroup-hybrid"
)

func cgroupNamed(s *snapshot.Snapshot, path string) *snapshot.Cgroup {
	for i := range s.Cgroups {
		if s.Cgroups[i].Path == path {
			return &s.Cgroups[i]
		}
	}
	return nil
}

func val(p *uint64) int64 {
	if p == nil {
		return -1
	}
	return int64(*p)
}

// TestCgroupsV2: a unified host from the kernel's v2 files.
func TestCgroupsV2(t *testing.T) {
	s, err := collectRoot(t, fixtureCgroupV2)
	if err != nil {
		t.Fatal(err)
	}
	if l := s.CgroupLayout; l == nil || l.Mode != "unified" || l.Unified != "/sys/fs/cgroup" || l.Read != 14 || l.Skipped != 0 {
		t.Fatalf("layout %+v", l)
	}
	if s.Cgroups[0].Path != "/" || s.Cgroups[0].Processes != s.Processes.Total {
		t.Errorf("first cgroup %+v, want the root with every process", s.Cgroups[0])
	}
	a := cgroupNamed(s, "/system.slice/apache2.service")
	if a == nil {
		t.Fatal("no apache2.service")
	}
	if a.Unit != "apache2.service" || val(a.PidsCurrent) != 498 || val(a.PidsMax) != 512 || val(a.PidsEventsMax) != 37 ||
		val(a.MemoryMax) != 8<<30 || a.MemoryHigh != nil || val(a.OOMKill) != 3 || a.MemoryEvents["max"] != 1204 ||
		a.MemoryStat["sock"] != 8<<20 || a.MemoryStat["anon"] != 7<<30 || a.Processes != 20 || a.Threads != 20 {
		t.Errorf("apache2.service %+v", a)
	}
	if a.CPUMax != nil || a.CPUStat["nr_throttled"] != 3010 || a.Pressure["memory"].SomeAvg10 != 41.2 || !a.Pressure["io"].HasFull {
		t.Errorf("apache2.service cpu/pressure: %+v %v %v", a.CPUMax, a.CPUStat, a.Pressure)
	}
	if a.WorkingSet() != (7<<30)+(512<<20)-(128<<20) {
		t.Errorf("working set %d", a.WorkingSet())
	}
	// Unlimited is absent, never a number.
	sys := cgroupNamed(s, "/system.slice")
	if sys.PidsMax != nil || sys.MemoryMax != nil || sys.Limited() {
		t.Errorf("system.slice has no limit: %+v", sys)
	}
	b, _ := json.Marshal(sys)
	if strings.Contains(string(b), "pids_max") || strings.Contains(string(b), "memory_max") {
		t.Errorf("unlimited values in JSON: %s", b)
	}
	d := cgroupNamed(s, "/system.slice/docker-3b2f8c1ad6e54f0f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f.scope")
	if d == nil || d.Container == nil || d.Container.Runtime != "docker" || d.CPUMax == nil || d.CPUMax.QuotaUsec != 50000 ||
		val(d.MemoryHigh) != 240<<20 || d.Processes != 2 || d.Threads != 9 {
		t.Errorf("docker scope %+v", d)
	}
	// Every process has its cgroup and unit; the kernel thread the root.
	for _, p := range s.Processes.List {
		switch {
		case p.KernelThread && p.Cgroup != "/":
			t.Errorf("kernel thread %d in %q", p.PID, p.Cgroup)
		case !p.KernelThread && (p.Cgroup == "" || p.Unit == ""):
			t.Errorf("pid %d: cgroup %q unit %q", p.PID, p.Cgroup, p.Unit)
		}
	}
	if p := findProc(s, 711); p.Container == nil || p.Container.Runtime != "docker" {
		t.Errorf("nginx in docker: %+v", p)
	}
	// Hostile cgroup names are kept verbatim in the data (renderers
	// escape), and are not taken for units.
	for _, name := range []string{"\x1b[31mred.scope", "$(reboot).service"} {
		cg := cgroupNamed(s, "/user.slice/user-1000.slice/user@1000.service/app.slice/"+name)
		if cg == nil || cg.Unit != "app.slice" || cg.UserUnitOf != "1000" || val(cg.PidsEventsMax) != 5 {
			t.Errorf("hostile %q: %+v", name, cg)
		}
	}
	// Units: apache2's 20 processes together.
	var apache *snapshot.UnitGroup
	for i, u := range s.Processes.Units {
		if u.Unit == "apache2.service" {
			apache = &s.Processes.Units[i]
		}
	}
	if apache == nil || apache.Processes != 20 || apache.FDs != 60 {
		t.Errorf("unit apache2.service: %+v", apache)
	}
}

// TestCgroupsHybrid: systemd's hybrid layout, read from /proc/mounts.
func TestCgroupsHybrid(t *testing.T) {
	s, err := collectRoot(t, fixtureCgroupHybrid)
	if err != nil {
		t.Fatal(err)
	}
	if l := s.CgroupLayout; l == nil || l.Mode != "hybrid" || l.V1["pids"] != "/sys/fs/cgroup/pids" || l.V1["name=systemd"] == "" {
		t.Fatalf("layout %+v", l)
	}
	p := cgroupNamed(s, "/system.slice/postfix.service")
	if p == nil {
		t.Fatal("no postfix.service")
	}
	if strings.Join(p.Hierarchies, " ") != "unified pids memory cpu,cpuacct freezer" {
		t.Errorf("hierarchies %q", p.Hierarchies)
	}
	if val(p.PidsMax) != 100 || val(p.PidsEventsMax) != 212 || val(p.MemoryMax) != 512<<20 || val(p.MemoryFailcnt) != 4711 ||
		val(p.OOMKill) != 1 || p.MemoryEvents != nil || p.MemoryStat["anon"] != 400<<20 || p.KmemTCP == nil ||
		p.KmemTCP.Usage != 3<<20 || p.KmemTCP.Limit != nil || p.CPUMax == nil || p.CPUMax.QuotaUsec != 50000 ||
		p.CPUStat["throttled_usec"] != 48000000 || p.Pressure["memory"].SomeAvg10 != 22 || p.FreezerState != "THAWED" || p.Frozen {
		t.Errorf("postfix.service %+v (kmem %+v, cpu %+v)", p, p.KmemTCP, p.CPUMax)
	}
	if p.Processes != 3 {
		t.Errorf("postfix.service processes %d", p.Processes)
	}
	sys := cgroupNamed(s, "/system.slice")
	if sys.MemoryMax != nil || sys.KmemTCP == nil || sys.KmemTCP.Limit != nil || sys.CPUMax != nil {
		t.Errorf("v1 unlimited values: %+v", sys)
	}
	q := cgroupNamed(s, "/quarantine")
	if q == nil || !q.Frozen || q.Processes != 1 {
		t.Errorf("quarantine %+v", q)
	}
	// pid 500's cgroup is systemd's session scope; its v1 freezer cgroup
	// counts it too.
	if pr := findProc(s, 500); pr.Cgroup != "/user.slice/user-1000.slice/session-2.scope" || pr.Unit != "session-2.scope" {
		t.Errorf("pid 500: %+v", pr)
	}
	// cron: pids cgroup of its own, memory only at the slice.
	if pr := findProc(s, 400); pr.Cgroup != "/system.slice/cron.service" {
		t.Errorf("pid 400: %q", pr.Cgroup)
	}
}

// TestCgroupsBound: past MaxCgroups the rest are counted, not read.
func TestCgroupsBound(t *testing.T) {
	c, err := New(Options{Root: fixtureCgroupV2, Now: func() time.Time { return fixedNow }, MaxCgroups: 4})
	if err != nil {
		t.Fatal(err)
	}
	s, err := c.Collect(t.Context(), Full)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Cgroups) != 4 || s.CgroupLayout.Skipped == 0 || s.Cgroups[0].Path != "/" {
		t.Errorf("bounded: %d read, %d skipped", len(s.Cgroups), s.CgroupLayout.Skipped)
	}
}

// TestNoCgroups: a tree without cgroup mounts (the moscow fixture) has an
// empty list and no layout, and its processes no cgroup.
func TestNoCgroups(t *testing.T) {
	s, err := collectRoot(t, moscow)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Cgroups) != 0 || s.CgroupLayout != nil || s.Processes.List[0].Cgroup != "" {
		t.Errorf("cgroups %v layout %v", s.Cgroups, s.CgroupLayout)
	}
}

// TestCgroupsLightRereadsLimited: after a full look, a light one reads the
// cgroups with a limit (or frozen) only, and says so.
func TestCgroupsLightRereadsLimited(t *testing.T) {
	c, err := New(Options{Root: fixtureCgroupV2})
	if err != nil {
		t.Fatal(err)
	}
	light := &snapshot.Snapshot{}
	if err := (cgroupSource{}).updateDepth(t.Context(), c, light, Light); err != nil {
		t.Fatal(err)
	}
	if len(light.Cgroups) != 14 || light.CgroupLayout.Partial {
		t.Errorf("a first light look walks the tree: %d, partial %v", len(light.Cgroups), light.CgroupLayout.Partial)
	}
	if err := (cgroupSource{}).update(t.Context(), c, &snapshot.Snapshot{}); err != nil {
		t.Fatal(err)
	}
	light = &snapshot.Snapshot{}
	if err := (cgroupSource{}).updateDepth(t.Context(), c, light, Light); err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, cg := range light.Cgroups {
		paths = append(paths, cg.Path)
		if !cg.Limited() {
			t.Errorf("light look read %s, which has no limit", cg.Path)
		}
		if cg.Pressure != nil || cg.PidsPeak != nil {
			t.Errorf("light look read %s's pressure or peak", cg.Path)
		}
	}
	if len(paths) != 5 || !light.CgroupLayout.Partial {
		t.Errorf("light look: %q, partial %v", paths, light.CgroupLayout.Partial)
	}
	a := cgroupNamed(light, "/system.slice/apache2.service")
	if a == nil || val(a.PidsEventsMax) != 37 || a.MemoryStat["inactive_file"] == 0 {
		t.Errorf("apache2.service in a light look: %+v", a)
	}
}

// TestCgroupsGolden pins the cgroup part of the JSON contract and the
// summary's cgroup table, hostile names escaped.
func TestCgroupsGolden(t *testing.T) {
	for _, fx := range []struct{ name, root string }{{"cgroup-v2", fixtureCgroupV2}, {"cgroup-hybrid", fixtureCgroupHybrid}} {
		s, err := collectRoot(t, fx.root)
		if err != nil {
			t.Fatal(err)
		}
		s.Kernel.PageSize = 4096
		got, err := json.MarshalIndent(struct {
			Cgroups []snapshot.Cgroup      `json:"cgroups"`
			Layout  *snapshot.CgroupLayout `json:"cgroup_layout"`
			Units   []snapshot.UnitGroup   `json:"units"`
		}{s.Cgroups, s.CgroupLayout, s.Processes.Units}, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		testkit.Golden(t, fx.name+".json", append(got, '\n'))
		var sum bytes.Buffer
		if err := snapshot.WriteSummary(&sum, s, snapshot.SummaryOptions{Top: 20}); err != nil {
			t.Fatal(err)
		}
		testkit.Golden(t, fx.name+"-summary.txt", sum.Bytes())
		if bytes.ContainsAny(sum.Bytes(), "\x1b\x00\r") {
			t.Errorf("%s: summary holds raw control bytes", fx.name)
		}
	}
}
