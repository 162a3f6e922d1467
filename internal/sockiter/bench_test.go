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
// its load).

func BenchmarkTaskFileList(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("loading a BPF iterator needs root (CAP_BPF and CAP_PERFMON)")
	}
	it, err := Load(Options{})
	if err != nil {
		b.Skipf("this host cannot run the iterator: %v", err)
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

func BenchmarkTaskList(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("loading a BPF iterator needs root (CAP_BPF and CAP_PERFMON)")
	}
	it, err := LoadTasks(Options{})
	if err != nil {
		b.Skipf("this host cannot run the iterator: %v", err)
	}
	defer it.Close()
	var tasks []Task
	for b.Loop() {
		tasks, err = it.List(context.Background(), tasks[:0])
		if err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(tasks)), "tasks")
}

func BenchmarkLoad(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("loading a BPF iterator needs root (CAP_BPF and CAP_PERFMON)")
	}
	for b.Loop() {
		k := NewKernel()
		it, err := Load(Options{Kernel: k})
		if err != nil {
			b.Skipf("this host cannot run the iterator: %v", err)
		}
		t, err := LoadTasks(Options{Kernel: k})
		if err != nil {
			b.Skipf("this host cannot run the task iterator: %v", err)
		}
		it.Close()
		t.Close()
	}
}

// BenchmarkOpenPinned is what a process pays for both iterators once an
// earlier one pinned them: against BenchmarkLoad.
func BenchmarkOpenPinned(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("loading a BPF iterator needs root (CAP_BPF and CAP_PERFMON)")
	}
	dir := b.TempDir()
	if err := unix.Mount("bpf", dir, "bpf", 0, "mode=0700"); err != nil {
		b.Skipf("mount a BPF filesystem: %v", err)
	}
	defer unix.Unmount(dir, unix.MNT_DETACH)
	o := Options{PinDir: filepath.Join(dir, "picket")}
	// The first process's load and pin, outside the timing.
	it, err := Load(o)
	if err != nil {
		b.Skipf("this host cannot run the iterator: %v", err)
	}
	it.Close()
	t, err := LoadTasks(o)
	if err != nil {
		b.Skipf("this host cannot run the task iterator: %v", err)
	}
	t.Close()
	for b.Loop() {
		it, err := Load(o)
		if err != nil {
			b.Skipf("this host cannot run the iterator: %v", err)
		}
		t, err := LoadTasks(o)
		if err != nil {
			b.Skipf("this host cannot run the task iterator: %v", err)
		}
		it.Close()
		t.Close()
	}
}
