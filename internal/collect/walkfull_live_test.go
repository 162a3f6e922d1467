package collect_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/picket-guard/picket/internal/collect"
	"github.com/picket-guard/picket/internal/snapshot"
	"github.com/picket-guard/picket/internal/sockiter"
	"github.com/picket-guard/picket/internal/testkit"
)

// fdholder opens PICKET_FDS unbound UDP sockets (an fd storm's files, each
// one the fd walk writes a record of: no table lists it), says ready and
// waits for its stdin to close.
func fdholder() int {
	n, err := strconv.Atoi(os.Getenv("PICKET_FDS"))
	if err != nil {
		fmt.Println(err)
		return 1
	}
	var rl unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &rl); err == nil && rl.Cur < rl.Max {
		rl.Cur = rl.Max
		unix.Setrlimit(unix.RLIMIT_NOFILE, &rl)
	}
	for range n {
		if _, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0); err != nil {
			fmt.Println(err)
			return 1
		}
	}
	fmt.Println("ready")
	io.Copy(io.Discard, os.Stdin)
	return 0
}

// TestLiveBPFWalkOverflow: a storm of sockets in no table (each one a
// record: the fd walk counts the rest) past the array the fd walk was
// loaded with (twice the host's open files, at least 65,536 records) makes
// its next pass fail; the look still attributes every fd, through the
// task_file iterator, and says so; later looks keep task_file.
func TestLiveBPFWalkOverflow(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: loading the BPF iterators")
	}
	if why := sockiter.Why(); why != "" {
		t.Skip(why)
	}
	if !testkit.KernelAtLeast(6, 2) {
		t.Skip("the fd walk needs 6.2 (bpf_rdonly_cast)")
	}
	c, err := collect.New(collect.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	look := func() *snapshot.Snapshot {
		s, err := c.Collect(context.Background(), collect.Full)
		if err != nil {
			t.Fatal(err)
		}
		if s.Collector != snapshot.CollectorBPF {
			t.Fatalf("collector %q (%s), want bpf", s.Collector, s.CollectorReason)
		}
		return s
	}
	// The walk's array is sized now, from the count of open files.
	files := openFiles(t)
	first := look()
	if !strings.Contains(first.BPFPrograms, "task_fds") {
		t.Fatalf("the fd walk did not load: bpf_programs %q", first.BPFPrograms)
	}
	// The storm's sockets alone are more records than the array holds.
	extra := max(2*files, 1<<16) + 5000
	var rl unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &rl); err != nil {
		t.Fatal(err)
	}
	per := int(min(rl.Max, 1<<20)) - 64
	if extra > 400_000 || per < 1000 {
		t.Skipf("an overflow needs %d more fds here, at most %d a process", extra, per)
	}
	holders := map[int]int{} // pid -> fds opened
	for extra > 0 {
		n := min(per, extra)
		extra -= n
		holders[startReady(t, "fdholder", nil, "PICKET_FDS="+strconv.Itoa(n))] = n
	}
	s := look()
	if !taskFile(s) || !strings.Contains(s.BPFPrograms, "not the fd walk") || !strings.Contains(s.BPFPrograms, "full") {
		t.Errorf("after the fd storm: bpf_programs %q, want task_file and why not the fd walk", s.BPFPrograms)
	}
	procs := map[int]snapshot.Process{}
	for _, p := range s.Processes.List {
		procs[p.PID] = p
	}
	for pid, n := range holders {
		if p, ok := procs[pid]; !ok || p.FDs < n {
			t.Errorf("fd holder %d of %d sockets: %+v (listed %v)", pid, n, p, ok)
		}
	}
	if s := look(); !taskFile(s) {
		t.Errorf("the look after: bpf_programs %q, want task_file still", s.BPFPrograms)
	}
	t.Logf("%d fd holders; %s", len(holders), s.BPFPrograms)
}

// taskFile says whether s's socket pass was the task_file iterator's.
func taskFile(s *snapshot.Snapshot) bool {
	return strings.HasPrefix(s.BPFPrograms, "task_file ") || strings.Contains(s.BPFPrograms, ": task_file ")
}

// openFiles is the host's count of open files (file-nr's first field).
func openFiles(t *testing.T) int {
	t.Helper()
	b, err := os.ReadFile("/proc/sys/fs/file-nr")
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(strings.Fields(string(b))[0])
	if err != nil {
		t.Fatal(err)
	}
	return n
}
