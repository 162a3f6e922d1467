package sockiter

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// The passes alone, as a full look runs them: their cost is the kernel's
// walk and the programs' work per fd or per task (scripts/bench-snapshot
// -then go test -run '^$' -bench . ./internal/sockiter/ runs them under
// its load); and what a process pays to have both iterators, loaded or
// opened from their pins.

// loadBoth loads (or opens) both iterators as o says, skipping the
// benchmark where this host cannot run them.
func loadBoth(b *testing.B, o Options) (*Iter, *Tasks) {
	b.Helper()
	if os.Geteuid() != 0 {
		b.Skip("loading a BPF iterator needs root (CAP_BPF and CAP_PERFMON)")
	}
	it, err := Load(o)
	if err != nil {
		b.Skipf("this host cannot run the iterator: %v", err)
	}
	t, err := LoadTasks(o)
	if err != nil {
		it.Close()
		b.Skipf("this host cannot run the task iterator: %v", err)
	}
	return it, t
}

func BenchmarkTaskFileList(b *testing.B) {
	it, t := loadBoth(b, Options{})
	defer it.Close()
	defer t.Close()
	var socks []Socket
	var fds []FDs
	var err error
	for b.Loop() {
		socks, fds, err = it.List(context.Background(), socks[:0], fds[:0])
		if err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(socks)), "sockets")
}

func BenchmarkTaskList(b *testing.B) {
	it, t := loadBoth(b, Options{})
	defer it.Close()
	defer t.Close()
	var tasks []Task
	var err error
	for b.Loop() {
		tasks, err = t.List(context.Background(), tasks[:0])
		if err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(tasks)), "tasks")
}

// BenchmarkLoad is what a process pays for both iterators with nothing
// pinned: the kernel's BTF decoded once, both programs relocated and
// verified.
func BenchmarkLoad(b *testing.B) {
	for b.Loop() {
		it, t := loadBoth(b, Options{Kernel: NewKernel()})
		it.Close()
		t.Close()
	}
}

// BenchmarkOpenPinned is what a process pays for both iterators once an
// earlier one pinned them: against BenchmarkLoad.
func BenchmarkOpenPinned(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("mounting a BPF filesystem needs root")
	}
	dir := b.TempDir()
	if err := unix.Mount("bpf", dir, "bpf", 0, "mode=0700"); err != nil {
		b.Skipf("mount a BPF filesystem: %v", err)
	}
	defer unix.Unmount(dir, unix.MNT_DETACH)
	o := Options{PinDir: filepath.Join(dir, "picket")}
	// The first process's load and pin, outside the timing.
	it, t := loadBoth(b, o)
	it.Close()
	t.Close()
	for b.Loop() {
		it, t := loadBoth(b, o)
		it.Close()
		t.Close()
	}
}

// BenchmarkWalkList is BenchmarkTaskFileList's pass through the fd walk.
func BenchmarkWalkList(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("loading a BPF iterator needs root")
	}
	it, err := LoadWalk(Options{})
	if err != nil {
		b.Skip(err)
	}
	defer it.Close()
	var socks []Socket
	var fds []FDs
	for b.Loop() {
		socks, fds, err = it.List(context.Background(), socks[:0], fds[:0])
		if err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(socks)), "sockets")
}

// BenchmarkLoadWalk is BenchmarkLoad with the fd walk in the task_file
// iterator's place: what a process pays where nothing is pinned.
func BenchmarkLoadWalk(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("loading a BPF iterator needs root")
	}
	for b.Loop() {
		k := NewKernel()
		it, err := LoadWalk(Options{Kernel: k})
		if err != nil {
			b.Skip(err)
		}
		t, err := LoadTasks(Options{Kernel: k})
		if err != nil {
			b.Fatal(err)
		}
		it.Close()
		t.Close()
	}
}
