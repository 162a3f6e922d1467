package main

import (
	"strings"
	"testing"

	"github.com/picket-guard/picket/internal/snapshot"
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
