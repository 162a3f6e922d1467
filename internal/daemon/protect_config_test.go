package daemon

import (
	"context"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/picket-guard/picket/internal/rules"
)

// TestConfigProtectHoldsUntilReload: a kill rule aimed at nobody's
// processes while the configuration's protect: names nobody is refused
// look after look, the processes live and the log says why; the reload
// that drops nobody from protect: lets the next look kill them.
func TestConfigProtectHoldsUntilReload(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: starts processes as nobody and kills them; CI runs as root")
	}
	t.Setenv("GOMEMLIMIT", "off")
	const rule = `
rules:
  - name: no-pkt-pr
    table: process_groups
    every: 1s
    if: comm == "pkt-pr" && user == "nobody"
    then: [{kill: {comm: pkt-pr, user: nobody, signal: KILL}}]
`
	protected := "protect: {users: [nobody], units: [postgresql.service]}\n" + rule
	var src atomic.Value
	src.Store(protected)
	load := func(string) (*rules.Config, string, error) { return loader(src.Load().(string))("") }

	procs := sleepers(t, "pkt-pr", 3)
	var killed atomic.Int32
	for _, c := range procs {
		go func() { c.Wait(); killed.Add(1) }()
	}
	var logs strings.Builder
	w := &syncWriter{w: &logs}
	d, err := New(Options{LoadConfig: load, StateDir: t.TempDir(), Stderr: w, Listen: "off", NoProtect: true, Interval: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx, nil) }()
	defer func() {
		stop()
		<-done
	}()
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(w.String(), "protected user") {
		if time.Now().After(deadline) {
			t.Fatalf("no refusal naming the protected user within 20s:\n%s", w.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(2 * time.Second) // two more looks, each refused
	if n := killed.Load(); n != 0 {
		t.Fatalf("%d of nobody's processes killed while protect: named nobody\n%s", n, w.String())
	}

	src.Store(rule)
	if err := d.Reload(); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(20 * time.Second)
	for killed.Load() < int32(len(procs)) {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d killed within 20s of the reload that dropped protect:\n%s", killed.Load(), len(procs), w.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// String is what was written so far.
func (s *syncWriter) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if b, ok := s.w.(*strings.Builder); ok {
		return b.String()
	}
	return ""
}
