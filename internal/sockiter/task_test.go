package sockiter

import (
	"bytes"
	"context"
	"os"
	"strconv"
	"strings"
	"testing"
)

func TestTaskState(t *testing.T) {
	for _, c := range []struct {
		raw, exit uint32
		want      byte
	}{
		{0x0000, 0, 'R'},
		{0x0001, 0, 'S'},
		{0x0002, 0, 'D'},
		{0x0402, 0, 'I'}, // TASK_IDLE: an idle kernel thread
		{0x0004, 0, 'T'},
		{0x0008, 0, 't'},
		{0x0000, 0x20, 'Z'}, // EXIT_ZOMBIE
		{0x0000, 0x10, 'X'}, // EXIT_DEAD
		{0x0040, 0, 'P'},
		{0x1000, 0, 'D'},          // TASK_RTLOCK_WAIT looks like an rt_mutex sleep
		{0x8000 | 0x0001, 0, 'D'}, // a frozen task is reported uninterruptible
		{0x0001 | 0x0100, 0, 'S'}, // TASK_WAKEKILL is not reported
	} {
		tk := Task{RawState: c.raw, ExitState: c.exit}
		if got := tk.State(); got != c.want {
			t.Errorf("state %#x exit %#x: %c, want %c", c.raw, c.exit, got, c.want)
		}
	}
}

func TestTaskComm(t *testing.T) {
	var tk Task
	copy(tk.comm[:], "bash")
	if string(tk.Comm()) != "bash" || !tk.CommComplete() {
		t.Errorf("comm %q complete %v", tk.Comm(), tk.CommComplete())
	}
	tk.Flags = pfKthread | pfWQWorker
	copy(tk.comm[:], "kworker/0:1")
	if tk.CommComplete() {
		t.Error("a workqueue worker's stat name has its work appended: Comm is not all of it")
	}
	tk.Flags = pfKthread
	copy(tk.comm[:], "0123456789abcde") // 15 bytes: perhaps cut
	if tk.CommComplete() {
		t.Error("a kernel thread's 15-byte comm may be a longer name cut")
	}
	tk.StartBoottime = 12_345_678_901
	if got := tk.StartTicks(); got != 1234 {
		t.Errorf("start ticks %d, want 1234", got)
	}
}

// TestTasksMatchSelf runs the iterator and compares what it says of this
// process, of init and of kthreadd with /proc.
func TestTasksMatchSelf(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("loading a BPF iterator needs root (CAP_BPF and CAP_PERFMON)")
	}
	it, err := LoadTasks(Options{})
	if err != nil {
		t.Skipf("this host cannot run the task iterator: %v", err)
	}
	defer it.Close()
	tasks, err := it.List(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	byPID := map[int32]Task{}
	for _, tk := range tasks {
		if _, dup := byPID[tk.PID]; dup {
			t.Errorf("pid %d listed twice", tk.PID)
		}
		byPID[tk.PID] = tk
	}
	self, ok := byPID[int32(os.Getpid())]
	if !ok {
		t.Fatalf("own pid %d not among %d tasks", os.Getpid(), len(tasks))
	}
	stat, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.LastIndexByte(stat, ')')
	comm := string(stat[bytes.IndexByte(stat, '(')+1 : i])
	f := strings.Fields(string(stat[i+2:])) // f[0] is field 3, state
	field := func(n int) uint64 {
		v, _ := strconv.ParseUint(f[n-3], 10, 64)
		return v
	}
	// The leader thread runs or sleeps (the test may run on another
	// thread of the process).
	if string(self.Comm()) != comm || self.PPID != int32(os.Getppid()) || self.StartTicks() != field(22) || (self.State() != 'R' && self.State() != 'S') {
		t.Errorf("own task %+v (comm %q, start %d, state %c); stat says %q ppid %d start %d", self, self.Comm(), self.StartTicks(), self.State(), comm, os.Getppid(), field(22))
	}
	if self.UID != uint32(os.Getuid()) || self.EUID != uint32(os.Geteuid()) || self.GID != uint32(os.Getgid()) || self.EGID != uint32(os.Getegid()) {
		t.Errorf("own ids %d %d %d %d", self.UID, self.EUID, self.GID, self.EGID)
	}
	if self.Threads < 2 || self.RSSPages == 0 || self.VMPages < self.RSSPages || self.NetNS == 0 {
		t.Errorf("own task %+v: a Go test has threads, memory and a network namespace", self)
	}
	// The hierarchies are /proc/self/cgroup's lines.
	cg, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	want := map[uint8]bool{}
	for _, l := range strings.Split(strings.TrimSpace(string(cg)), "\n") {
		id, _, _ := strings.Cut(l, ":")
		n, _ := strconv.Atoi(id)
		want[uint8(n)] = true
	}
	got := map[uint8]bool{}
	for i := range self.NCgroups {
		got[self.Hierarchy[i]] = true
		if self.CgroupID[i] == 0 {
			t.Errorf("hierarchy %d: no cgroup id", self.Hierarchy[i])
		}
	}
	if len(got) != len(want) {
		t.Errorf("hierarchies %v, /proc/self/cgroup has %v", got, want)
	}
	for h := range want {
		if !got[h] {
			t.Errorf("hierarchy %d missing (have %v)", h, got)
		}
	}
	// Pid 1 is not in the pass on the kernels picket is tested on (the
	// collector reads it from /proc): when it is, it is init.
	if init, ok := byPID[1]; ok && (init.PPID != 0 || init.KernelThread()) {
		t.Errorf("init: %+v", init)
	}
	if kt, ok := byPID[2]; !ok || !kt.KernelThread() || string(kt.Comm()) != "kthreadd" {
		t.Errorf("kthreadd: %+v (comm %q)", kt, kt.Comm())
	}
}
