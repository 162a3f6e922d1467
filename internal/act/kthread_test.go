package act

import (
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/picket-guard/picket/internal/testkit"
	"github.com/picket-guard/picket/internal/testkit/snaptest"
)

// TestKillSkipsKernelThreadsTheRuleSaw: a kernel thread in the rule's
// snapshot (a rule over the processes table sees kworkers too) is not a
// candidate at all: not read again, not reported as a refusal. A fresh scan
// of /proc meets it and refuses it by the safety rules, saying so.
func TestKillSkipsKernelThreadsTheRuleSaw(t *testing.T) {
	r := newRunner(t, Options{DryRun: true})
	all, err := r.procs.all()
	if err != nil {
		t.Fatal(err)
	}
	kt := -1
	for _, p := range all {
		if p.kthread && p.pid > 1 {
			kt = p.pid
			break
		}
	}
	if kt < 0 {
		t.Skip("no kernel thread visible in this pid namespace")
	}
	bin := testkit.NamedBin(t, "pkt-kthr")
	c := spawn(t, -1, nil, filepath.Join(bin, "pkt-kthr"), "600")
	waitFor(5*time.Second, func() bool { p, err := r.procs.read(c.pid); return err == nil && p.comm == "pkt-kthr" })
	snap := snaptest.Live(t)
	seen := false
	for _, sp := range snap.Processes.List {
		if sp.PID == kt {
			seen = sp.KernelThread
		}
	}
	if !seen {
		t.Fatalf("the snapshot does not show pid %d as a kernel thread", kt)
	}
	spec := &KillSpec{PID: strconv.Itoa(kt) + " " + strconv.Itoa(c.pid)}
	res := r.Do(t.Context(), Request{Spec: spec, Snapshot: snap})
	if got := anyInts(res.Targets); !reflect.DeepEqual(got, []int{c.pid}) || strings.Contains(res.Result, "refused") {
		t.Errorf("with the snapshot: targets %v, %q; want only %d, no refusal", got, res.Result, c.pid)
	}
	res = r.Do(t.Context(), Request{Spec: spec})
	if got := anyInts(res.Targets); !reflect.DeepEqual(got, []int{c.pid}) || !strings.Contains(res.Result, "refused 1: pid "+strconv.Itoa(kt)+" (kernel thread)") {
		t.Errorf("fresh scan: targets %v, %q; want only %d, pid %d refused as a kernel thread", got, res.Result, c.pid, kt)
	}
	if !c.alive() {
		t.Error("a dry run killed")
	}
}
