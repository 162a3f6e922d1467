package doctor

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/picket-guard/picket/internal/collect"
	"github.com/picket-guard/picket/internal/snapshot"
	"github.com/picket-guard/picket/internal/testkit"
)

// fixtures are the trees testdata/gen/doctor.py writes, one per story.
const fixtures = "../../testdata/doctor"

// btime is the fixtures' boot time (/proc/stat "btime").
var btime = time.Unix(1795395064, 0).UTC()

// collectAt reads a fixture tree with the clock at the given time and the
// fixtures' page size (4 KiB; the test machine's may differ).
func collectAt(t *testing.T, root string, now time.Time) *snapshot.Snapshot {
	t.Helper()
	c, err := collect.New(collect.Options{Root: root, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatalf("collect.New(%s): %v", root, err)
	}
	s, err := c.Collect(context.Background(), collect.Full)
	if err != nil {
		t.Fatalf("Collect(%s): %v", root, err)
	}
	s.Kernel.PageSize = 4096
	return s
}

// fixtureInput is one fixture case as picket doctor would see it: one
// snapshot, or two one second apart when the case has before/ and after/.
func fixtureInput(t *testing.T, name string) Input {
	t.Helper()
	now := btime.Add(1000 * time.Second)
	dir := filepath.Join(fixtures, name)
	in := Input{Thresholds: DefaultThresholds()}
	if _, err := os.Stat(filepath.Join(dir, "before")); err == nil {
		in.Prev = collectAt(t, filepath.Join(dir, "before"), now.Add(-time.Second))
		in.Cur = collectAt(t, filepath.Join(dir, "after"), now)
		in.Interval = time.Second
		return in
	}
	in.Cur = collectAt(t, dir, now)
	return in
}

// TestFixtures runs every check on every story and checks each verdict
// and the exit code.
func TestFixtures(t *testing.T) {
	type sevs = map[string]Severity
	for _, tc := range []struct {
		name string
		want sevs // checks not listed are ok
		exit int
	}{
		{"healthy", sevs{}, 0},
		{"tcp-orphans", sevs{"tcp-orphans": Warning}, 1},
		{"tcp-memory", sevs{"tcp-memory": Critical}, 2},
		{"numothersock", sevs{"beancounters": Critical, "memory-thrashing": Unknown}, 2},
		{"imapd-storm", sevs{"process-storm": Warning}, 1},
		{"apache-thrashing", sevs{"memory-thrashing": Critical, "process-storm": Warning}, 2},
		{"apache-thrashing/after", sevs{"memory-thrashing": Critical, "process-storm": Warning}, 2},
		// The numbers are fine; the kernel's log of the last hour is not.
		{"kernel-said", sevs{"conntrack": Critical, "cgroup-limits": Warning, "kernel-log": Warning}, 2},
		// Older kernels' formats (testdata/gen/oldkernels.py).
		{"kernel-2.6.32", sevs{"beancounters": Critical, "process-storm": Warning, "memory-thrashing": Unknown}, 2},
		{"kernel-3.10", sevs{"beancounters": Critical, "memory-thrashing": Unknown}, 2},
		{"kernel-4.15", sevs{"memory-thrashing": Critical, "process-storm": Warning}, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := Run(fixtureInput(t, tc.name), Checks())
			if len(r.Findings) != len(Checks()) {
				t.Fatalf("%d findings", len(r.Findings))
			}
			for _, f := range r.Findings {
				want, ok := tc.want[f.ID]
				if !ok {
					want = OK
				}
				if f.Severity != want {
					t.Errorf("%s: %s, want %s: %s", f.ID, f.Severity, want, f.Title)
				}
			}
			if r.ExitCode() != tc.exit {
				t.Errorf("exit %d, want %d", r.ExitCode(), tc.exit)
			}
		})
	}
}

// TestOrphanNumbers: case 1 of Out of socket memory with its own numbers.
func TestOrphanNumbers(t *testing.T) {
	r := Run(fixtureInput(t, "tcp-orphans"), Checks())
	f, _ := r.Find("tcp-orphans")
	for key, want := range map[string]int64{"orphans": 21564, "tcp_max_orphans": 65536, "orphans_x2": 43128, "orphans_x4": 86256,
		"recommended_tcp_max_orphans": 87000} {
		if got := evInt(t, f, key); got != want {
			t.Errorf("%s = %d, want %d", key, got, want)
		}
	}
	m, _ := r.Find("tcp-memory")
	if evInt(t, m, "mem_pages") != 1894 || evInt(t, m, "tcp_mem_high_pages") != 6187968 || evInt(t, m, "mem_bytes") != 1894*4096 {
		t.Errorf("tcp-memory evidence = %v", m.Evidence)
	}
	r = Run(fixtureInput(t, "tcp-memory"), Checks())
	m, _ = r.Find("tcp-memory")
	if evInt(t, m, "mem_pages") != 6250000 || !strings.Contains(m.Title, "above tcp_mem high 6187968 pages") {
		t.Errorf("case 2: %s %v", m.Title, m.Evidence)
	}
}

func TestNumothersockHolders(t *testing.T) {
	r := Run(fixtureInput(t, "numothersock"), Checks())
	f, _ := r.Find("beancounters")
	v, _ := f.Evidence.Get("top_non_tcp_holders")
	hs := v.(HolderRows)
	if len(hs) < 3 || hs[0].PID != 302 || hs[0].Comm != "master" || hs[0].Unix != 120 || hs[1].PID != 410 || hs[1].UDP != 40 {
		t.Errorf("holders = %+v", hs)
	}
	if !strings.Contains(strings.Join(f.Fix, "\n"), "postconf -e default_process_limit=10") {
		t.Errorf("no Postfix fix: %q", f.Fix)
	}
}

func TestImapdStormFixture(t *testing.T) {
	r := Run(fixtureInput(t, "imapd-storm"), Checks())
	f, _ := r.Find("process-storm")
	v, _ := f.Evidence.Get("storms")
	g := v.(GroupRows)
	if len(g) != 1 || g[0].User != "alice" || g[0].Comm != "imapd" || g[0].Count != 64 || g[0].ParentPID != 300 ||
		g[0].ParentComm != "inetd" || g[0].StartedLastMinute != 37 || g[0].NprocLimit != 70 {
		t.Errorf("storms = %+v", g)
	}
	v, _ = f.Evidence.Get("users_near_nproc")
	if u := v.(UserRows); len(u) != 1 || u[0].User != "alice" || u[0].Threads != 64 || u[0].NprocLimit != 70 {
		t.Errorf("users near nproc = %+v", u)
	}
}

func TestApacheThrashing(t *testing.T) {
	r := Run(fixtureInput(t, "apache-thrashing"), Checks())
	f, _ := r.Find("memory-thrashing")
	for key, want := range map[string]any{"swap_in_pages_per_second": 4200.0, "swap_out_pages_per_second": 6100.0,
		"major_faults_per_second": 15000.0, "psi_some_avg10": 71.32, "psi_full_avg10": 48.77, "interval_seconds": 1.0, "rates_measured": true} {
		if got, _ := f.Evidence.Get(key); got != want {
			t.Errorf("%s = %v, want %v", key, got, want)
		}
	}
	v, _ := f.Evidence.Get("growing_groups")
	g := v.(GrowthRows)
	if len(g) == 0 || g[0].Comm != "apache2" || g[0].User != "www-data" || *g[0].CountDelta != 40 || g[0].ParentPID != 500 {
		t.Errorf("growing = %+v", g)
	}
}

// TestGolden pins the human output of docs/stories.md.
func TestGolden(t *testing.T) {
	for _, name := range []string{"healthy", "tcp-orphans", "tcp-memory", "numothersock", "imapd-storm", "apache-thrashing", "kernel-said",
		"kernel-2.6.32", "kernel-3.10", "kernel-4.15"} {
		t.Run(name, func(t *testing.T) {
			var b bytes.Buffer
			if err := WriteText(&b, Run(fixtureInput(t, name), Checks()), TextOptions{}); err != nil {
				t.Fatal(err)
			}
			testkit.Golden(t, strings.ReplaceAll(name, "/", "-")+".txt", b.Bytes())
			if bytes.ContainsAny(b.Bytes(), "\x1b\x00\r") {
				t.Errorf("raw control bytes in the output")
			}
		})
	}
}

// TestMissingFiles: a check whose files are missing says unknown; a check
// whose limit does not exist here (beancounters outside OpenVZ, conntrack
// without the module) says ok; the report is unknown, exit 3, only because
// nothing else is wrong.
func TestMissingFiles(t *testing.T) {
	root := testkit.CopyTree(t, filepath.Join(fixtures, "healthy"))
	for _, p := range []string{"proc/net/sockstat", "proc/sys/net/ipv4/tcp_mem", "proc/sys/fs/file-nr", "proc/pressure",
		"proc/vmstat", "proc/sys/net/netfilter"} {
		if err := os.RemoveAll(filepath.Join(root, p)); err != nil {
			t.Fatal(err)
		}
	}
	r := Run(Input{Cur: collectAt(t, root, btime.Add(time.Hour))}, Checks())
	want := map[string]Severity{"tcp-orphans": Unknown, "tcp-memory": Unknown, "beancounters": OK, "other-sockets": OK,
		"process-storm": OK, "memory-thrashing": Unknown, "fd-exhaustion": Unknown, "conntrack": OK, "socket-leak": OK}
	for _, f := range r.Findings {
		if f.Severity != want[f.ID] {
			t.Errorf("%s: %s, want %s (%s)", f.ID, f.Severity, want[f.ID], f.Title)
		}
		if f.Severity == Unknown && !strings.Contains(f.Explanation, "/proc/") {
			t.Errorf("%s: unknown without saying which file: %s", f.ID, f.Explanation)
		}
	}
	if r.Status != Unknown || r.ExitCode() != 3 {
		t.Errorf("status %s exit %d, want unknown 3", r.Status, r.ExitCode())
	}
}
