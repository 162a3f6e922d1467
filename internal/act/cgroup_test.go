package act

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/picket-guard/picket/internal/testkit"
)

// TestLimitV2Fixture: on a unified host's files (the v2 fixture tree) limit
// finds a unit's cgroup, lowers pids.max to pids.current, sets memory.high,
// refuses to raise a limit, and restores both.
func TestLimitV2Fixture(t *testing.T) {
	root := testkit.CopyTree(t, "../../testdata/fixtures/cgroup-v2")
	dir := filepath.Join(root, "sys/fs/cgroup/system.slice/apache2.service")
	r := newRunner(t, Options{Root: root})
	read := func(f string) string { b, _ := os.ReadFile(filepath.Join(dir, f)); return strings.TrimSpace(string(b)) }

	dry := r.Do(t.Context(), Request{Spec: &LimitSpec{CgroupTarget: CgroupTarget{Unit: "apache2.service"}, PidsMax: "current", For: time.Minute}, DryRun: true})
	if dry.Result != "would lower pids.max of /system.slice/apache2.service from 512 to 498 for 1m0s" {
		t.Errorf("dry run: %+v", dry)
	}
	res := r.Do(t.Context(), Request{Spec: &LimitSpec{CgroupTarget: CgroupTarget{Unit: "apache2.service"}, PidsMax: "current", For: time.Minute}})
	if res.Error != "" || read("pids.max") != "498" {
		t.Fatalf("limit: %+v, pids.max %s", res, read("pids.max"))
	}
	mem := r.Do(t.Context(), Request{Spec: &LimitSpec{CgroupTarget: CgroupTarget{Cgroup: "/system.slice/apache2.service"}, MemoryHigh: "6G", For: time.Minute}})
	if mem.Error != "" || read("memory.high") != "6442450944" {
		t.Fatalf("memory_high: %+v, memory.high %s", mem, read("memory.high"))
	}
	// Never raised: a limit at or below the value is left alone.
	up := r.Do(t.Context(), Request{Spec: &LimitSpec{CgroupTarget: CgroupTarget{Unit: "apache2.service"}, PidsMax: "1000", For: time.Minute}})
	if !strings.Contains(up.Result, "left alone") || up.ID != "" {
		t.Errorf("raising: %+v", up)
	}
	for _, id := range []string{res.ID, mem.ID} {
		if _, err := r.Undo(t.Context(), id); err != nil {
			t.Fatal(err)
		}
	}
	if read("pids.max") != "512" || read("memory.high") != "max" {
		t.Errorf("after undo: pids.max %s, memory.high %s", read("pids.max"), read("memory.high"))
	}
	// Someone else's later change is left alone by a revert.
	res = r.Do(t.Context(), Request{Spec: &LimitSpec{CgroupTarget: CgroupTarget{Unit: "apache2.service"}, PidsMax: "100", For: time.Minute}})
	os.WriteFile(filepath.Join(dir, "pids.max"), []byte("300\n"), 0o644)
	if _, err := r.Undo(t.Context(), res.ID); err == nil || read("pids.max") != "300" {
		t.Errorf("undo over a later change: %v, pids.max %s", err, read("pids.max"))
	}
}

// TestCgroupTargetsRefused: paths that leave the hierarchy, the root,
// names systemd never makes, ambiguous and missing units, and actions on
// a fixture's processes are refused before anything is written.
func TestCgroupTargetsRefused(t *testing.T) {
	root := testkit.CopyTree(t, "../../testdata/fixtures/cgroup-v2")
	r := newRunner(t, Options{Root: root})
	for _, tc := range []struct {
		spec Spec
		want string
	}{
		{&LimitSpec{CgroupTarget: CgroupTarget{Cgroup: "/system.slice/../../../etc"}, PidsMax: "1", For: time.Minute}, "without . or .. components"},
		{&LimitSpec{CgroupTarget: CgroupTarget{Cgroup: "/"}, PidsMax: "1", For: time.Minute}, "other than the root"},
		{&LimitSpec{CgroupTarget: CgroupTarget{Unit: "$(reboot).service"}, PidsMax: "1", For: time.Minute}, "not a systemd unit name"},
		{&LimitSpec{CgroupTarget: CgroupTarget{Unit: "nosuch.service"}, PidsMax: "1", For: time.Minute}, "no cgroup of that name"},
		{&LimitSpec{CgroupTarget: CgroupTarget{Unit: "apache2.service"}, For: time.Minute}, "one of pids_max and memory_high"},
		{&LimitSpec{CgroupTarget: CgroupTarget{Unit: "apache2.service"}, PidsMax: "1"}, "for is required"},
		{&FreezeCgroupSpec{CgroupTarget: CgroupTarget{Unit: "apache2.service"}, For: time.Minute}, "fixture tree"},
		{&KillCgroupSpec{CgroupTarget: CgroupTarget{Unit: "apache2.service"}}, "fixture tree"},
		{&KillSpec{CgroupGlob: "/system.slice/{{.unit}}"}, "cgroup_glob cannot hold a placeholder"},
		{&KillSpec{Unit: "apache2"}, "not a systemd unit name"},
	} {
		res := r.Do(t.Context(), Request{Spec: tc.spec})
		if !strings.HasPrefix(res.Result, "refused") || !strings.Contains(res.Result, tc.want) || res.ID != "" {
			t.Errorf("%s %+v: %s, want %q", tc.spec.Kind(), tc.spec, res.Result, tc.want)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(root, "sys/fs/cgroup/system.slice/apache2.service/pids.max")); string(b) != "512\n" {
		t.Errorf("pids.max changed: %q", b)
	}
}

// A limit's edges: pids_max up to the kernel's PID_MAX_LIMIT (4,194,304),
// memory_high from 1M, for up to maxFor; a cgroup exactly at the value is
// left alone; the revert says what it restored.
func TestLimitEdges(t *testing.T) {
	spec := func(pids, mem string, d time.Duration) *LimitSpec {
		return &LimitSpec{CgroupTarget: CgroupTarget{Unit: "apache2.service"}, PidsMax: pids, MemoryHigh: mem, For: d}
	}
	for _, c := range []struct {
		s  *LimitSpec
		ok bool
	}{
		{spec("4194304", "", time.Minute), true},
		{spec("4194305", "", time.Minute), false},
		{spec("", "1M", time.Minute), true},
		{spec("", "1048575", time.Minute), false},
		{spec("1", "", maxFor), true},
		{spec("1", "", maxFor+time.Second), false},
	} {
		if err := c.s.Validate(); (err == nil) != c.ok {
			t.Errorf("pids_max %q memory_high %q for %v: %v, want valid %v", c.s.PidsMax, c.s.MemoryHigh, c.s.For, err, c.ok)
		}
	}

	root := testkit.CopyTree(t, "../../testdata/fixtures/cgroup-v2")
	r := newRunner(t, Options{Root: root})
	same := r.Do(t.Context(), Request{Spec: spec("512", "", time.Minute)}) // pids.max is 512
	if !strings.Contains(same.Result, "left alone") || same.ID != "" {
		t.Errorf("lowering to the value it has: %+v", same)
	}
	res := r.Do(t.Context(), Request{Spec: spec("100", "", time.Minute)})
	if res.Error != "" {
		t.Fatalf("limit: %+v", res)
	}
	undo, err := r.Undo(t.Context(), res.ID)
	if err != nil || undo.Result != "undone: restored pids.max of /system.slice/apache2.service from 100 to 512" {
		t.Errorf("undo: %v, %q", err, undo.Result)
	}
}
