package daemon

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"

	"github.com/picket-guard/picket/internal/act"
	"github.com/picket-guard/picket/internal/collect"
	"github.com/picket-guard/picket/internal/doctor"
	"github.com/picket-guard/picket/internal/notify"
	"github.com/picket-guard/picket/internal/rules"
	"github.com/picket-guard/picket/internal/snapshot"
	"github.com/picket-guard/picket/internal/testkit"
)

// BenchmarkScale is the daemon's full look at a host of 3,000, 30,000 and
// 100,000 processes: a synthetic /proc tree (the moscow fixture's kernel
// files, plus n processes of n/10 users, 10 imapd each, 3 fds each) on
// tmpfs, collected, diagnosed against the previous look and evaluated by
// the built-in rules, two snapshots alive as in picket run. It reports the
// time per process and the heap and RSS per process after the looks.
//
// PICKET_BENCH_MEMLIMIT=fixed sets the old fixed 20 MiB soft limit,
// scaled (the default) the limit picket run sets now. RSS is the process's,
// so run one size per process (scripts/bench-scale does):
//
//	go test ./internal/daemon -run '^$' -bench 'Scale/30k' -benchtime 5x
func BenchmarkScale(b *testing.B) {
	for _, n := range []int{3_000, 30_000, 100_000} {
		b.Run(fmt.Sprintf("%dk", n/1000), func(b *testing.B) { benchScale(b, n) })
	}
}

func benchScale(b *testing.B, n int) {
	root := scaleTree(b, n)
	col, err := collect.New(collect.Options{Root: root})
	if err != nil {
		b.Fatal(err)
	}
	cfg, err := rules.LoadBytes(rules.DefaultConfigName, rules.DefaultConfig, rules.Registry{
		Output:      func(k string) (any, bool) { return notify.NewSpec(k) },
		Action:      func(k string) (any, bool) { return act.NewSpec(k) },
		OutputKinds: notify.Kinds(), ActionKinds: act.Kinds(),
	})
	if err != nil {
		b.Fatal(err)
	}
	eng := rules.NewEngine(cfg, cfg.Host("bench"), rules.EngineOptions{})
	mode := os.Getenv("PICKET_BENCH_MEMLIMIT")
	old := debug.SetMemoryLimit(-1)
	defer debug.SetMemoryLimit(old)
	var lim *memLimiter
	if mode == "fixed" {
		debug.SetMemoryLimit(20 << 20)
	} else {
		lim = &memLimiter{}
		lim.set(MemoryLimit(0, 0))
	}
	ctx := context.Background()
	var prev *snapshot.Snapshot
	look := func() {
		snap, err := col.Collect(ctx, collect.Full)
		if snap == nil {
			b.Fatal(err)
		}
		if snap.Processes.Total < n {
			b.Fatalf("%d processes, want %d", snap.Processes.Total, n)
		}
		lim.update(snap.Processes.Total, snap.Memory.MemTotalBytes)
		rep := doctor.Run(doctor.Input{Cur: snap, Prev: prev}, doctor.Checks())
		in := &rules.Input{Snapshot: snap}
		for _, f := range rep.Findings {
			in.Findings = append(in.Findings, rules.Finding{ID: f.ID, Severity: f.Severity.String(), Title: f.Title})
		}
		if _, err := eng.Evaluate(in, eng.Rules()); err != nil {
			b.Fatal(err)
		}
		prev = snap
	}
	look() // the first look: the engine and the previous snapshot fill up
	var gc0 runtime.MemStats
	runtime.ReadMemStats(&gc0)
	b.ResetTimer()
	for range b.N {
		look()
	}
	b.StopTimer()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/proc")
	b.ReportMetric(float64(ms.HeapInuse)/float64(n), "heap-B/proc")
	b.ReportMetric(float64(rssBytes(b))/float64(n), "rss-B/proc")
	b.ReportMetric(float64(ms.NumGC-gc0.NumGC)/float64(b.N), "gc/op")
	runtime.KeepAlive(prev)
}

func rssBytes(b *testing.B) int64 {
	st, err := os.ReadFile("/proc/self/status")
	if err != nil {
		b.Fatal(err)
	}
	for _, l := range strings.Split(string(st), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// scaleTree writes the synthetic tree: under /dev/shm where there is one
// (100,000 processes are 700,000 files), removed when the benchmark ends.
func scaleTree(b *testing.B, n int) string {
	b.Helper()
	base := ""
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		base = "/dev/shm"
	}
	dir, err := os.MkdirTemp(base, "picket-bench-scale-")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { os.RemoveAll(dir) })
	src := testkit.RepoPath(b, "testdata/fixtures/moscow")
	root := filepath.Join(dir, "root")
	copyDir(b, src, root, func(rel string) bool {
		// The fixture's own processes go: the tree is the n below.
		parts := strings.Split(rel, string(filepath.Separator))
		if len(parts) >= 2 && parts[0] == "proc" {
			if _, err := strconv.Atoi(parts[1]); err == nil {
				return false
			}
		}
		return true
	})
	must := func(err error) {
		if err != nil {
			b.Fatal(err)
		}
	}
	for i := range n {
		pid := 1000 + i
		uid := 2000 + i/10
		d := filepath.Join(root, "proc", strconv.Itoa(pid))
		must(os.MkdirAll(filepath.Join(d, "fd"), 0o755))
		stat := fmt.Sprintf("%d (imapd) S 1 %d %d 0 -1 4194560 99 0 1 0 0 0 0 0 20 0 1 0 %d 9277440 %d 18446744073709551615 1 1 1 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0 1 1 1 1 1 1 1 0\n", pid, pid, pid, 3000+i, 900+i%100)
		must(os.WriteFile(filepath.Join(d, "stat"), []byte(stat), 0o644))
		status := fmt.Sprintf("Name:\timapd\nState:\tS (sleeping)\nTgid:\t%d\nPid:\t%d\nPPid:\t1\nUid:\t%d\t%d\t%d\t%d\nGid:\t%d\t%d\t%d\t%d\nThreads:\t1\n", pid, pid, uid, uid, uid, uid, uid, uid, uid, uid)
		must(os.WriteFile(filepath.Join(d, "status"), []byte(status), 0o644))
		must(os.WriteFile(filepath.Join(d, "comm"), []byte("imapd\n"), 0o644))
		for fd := range 3 {
			must(os.Symlink("/dev/null", filepath.Join(d, "fd", strconv.Itoa(fd))))
		}
	}
	return root
}

func copyDir(b *testing.B, src, dst string, keep func(rel string) bool) {
	b.Helper()
	err := filepath.Walk(src, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if rel != "." && !keep(rel) {
			if fi.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		to := filepath.Join(dst, rel)
		switch {
		case fi.IsDir():
			return os.MkdirAll(to, 0o755)
		case fi.Mode()&os.ModeSymlink != 0:
			l, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return os.Symlink(l, to)
		default:
			c, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			return os.WriteFile(to, c, 0o644)
		}
	})
	if err != nil {
		b.Fatal(err)
	}
}
