package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/picket-guard/picket/internal/snapshot"
	"github.com/picket-guard/picket/internal/sockiter"
)

// TestCollectorLine: --verbose says how sockets were attributed and how
// processes were read, with the reason escaped.
func TestCollectorLine(t *testing.T) {
	for _, c := range []struct {
		snap snapshot.Snapshot
		want []string
	}{
		{snapshot.Snapshot{Collector: snapshot.CollectorBPF, ProcessCollector: snapshot.CollectorBPF},
			[]string{"sockets attributed by: bpf", "processes read by: bpf"}},
		{snapshot.Snapshot{Collector: snapshot.CollectorBPF, ProcessCollector: snapshot.CollectorProc, ProcessCollectorReason: "load the task iterator: \x1b[31mno"},
			[]string{"sockets attributed by: bpf", "processes read by: proc", "load the task iterator"}},
		{snapshot.Snapshot{Collector: snapshot.CollectorBPF, ProcessCollector: snapshot.CollectorBPF, BPFPrograms: "opened from its pin (/sys/fs/bpf/picket)"},
			[]string{"BPF programs: opened from its pin (/sys/fs/bpf/picket)"}},
		{snapshot.Snapshot{Collector: snapshot.CollectorProc, CollectorReason: "asked for"},
			[]string{"sockets attributed by: proc", "asked for"}},
	} {
		got := collectorLine(&c.snap)
		for _, w := range c.want {
			if !strings.Contains(got, w) {
				t.Errorf("%+v: %q has no %q", c.snap, got, w)
			}
		}
		if strings.Contains(got, "\x1b") {
			t.Errorf("%q: the reason is not escaped", got)
		}
	}
}

// TestBPFProgramsPinned: on a host whose /sys/fs/bpf is a BPF filesystem
// (systemd mounts one at boot; this test mounts one where none is), the
// first command loads the iterators and pins them in /sys/fs/bpf/picket,
// the next opens them from their pins, and says so in the snapshot and in
// doctor --verbose. The pins it made are removed at the end.
func TestBPFProgramsPinned(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: loading BPF iterators, mounting a BPF filesystem")
	}
	if why := sockiter.Why(); why != "" {
		t.Skip(why)
	}
	const fsDir = "/sys/fs/bpf"
	if sockiter.DefaultPins() == "" {
		if err := unix.Mount("bpf", fsDir, "bpf", 0, "mode=0700"); err != nil {
			t.Fatalf("mount a BPF filesystem on %s: %v", fsDir, err)
		}
		t.Cleanup(func() { unix.Unmount(fsDir, unix.MNT_DETACH) })
	}
	if _, err := os.Lstat(sockiter.DefaultPinDir); err == nil {
		// The host's own picket pinned them: its pins are used as they are.
		t.Logf("%s was there before the test", sockiter.DefaultPinDir)
	} else {
		t.Cleanup(func() { os.RemoveAll(sockiter.DefaultPinDir) })
	}
	bin := snapshotTestBinary(t)
	look := func() snapshot.Snapshot {
		t.Helper()
		out, err := exec.Command(bin, "snapshot", "--json", "--collector", "bpf").Output()
		if err != nil {
			t.Fatalf("picket snapshot: %v", err)
		}
		var s snapshot.Snapshot
		if err := json.Unmarshal(out, &s); err != nil {
			t.Fatal(err)
		}
		if s.Collector != snapshot.CollectorBPF || s.ProcessCollector != snapshot.CollectorBPF {
			t.Fatalf("collector %q (%s), process collector %q (%s)", s.Collector, s.CollectorReason, s.ProcessCollector, s.ProcessCollectorReason)
		}
		return s
	}
	first := look()
	if !strings.HasPrefix(first.BPFPrograms, sockiter.HowPinned) && !strings.HasPrefix(first.BPFPrograms, sockiter.HowReused) {
		t.Errorf("first look: bpf_programs %q, want them pinned", first.BPFPrograms)
	}
	if !sockiter.Pinned(sockiter.DefaultPinDir) {
		t.Fatalf("nothing pinned in %s after a look", sockiter.DefaultPinDir)
	}
	second := look()
	if want := sockiter.HowReused + " (" + sockiter.DefaultPinDir + "): "; !strings.HasPrefix(second.BPFPrograms, want) {
		t.Errorf("second look: bpf_programs %q, want %q", second.BPFPrograms, want)
	}
	if second.Processes.Total == 0 || second.Sockets.Totals.Unix == 0 {
		t.Errorf("the look from the pins saw %d processes, %d unix sockets", second.Processes.Total, second.Sockets.Totals.Unix)
	}
	out, _ := exec.Command(bin, "doctor", "--verbose").CombinedOutput()
	if !strings.Contains(string(out), "BPF programs: "+sockiter.HowReused) {
		t.Errorf("doctor --verbose does not say the programs came from their pins:\n%s", out)
	}
}
