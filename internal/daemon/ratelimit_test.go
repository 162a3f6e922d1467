package daemon

import (
	"context"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/picket-guard/picket/internal/server"
)

// A rule that kills one process a second reaches the rate limit (10
// actions per rule per 10 minutes) at its eleventh: the refusals are
// counted in Health, which /metrics exports as
// picket_actions_rate_limited_total and the fleet's
// PicketActionsRateLimited alert reads.
func TestRateLimitedActionsAreCounted(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: starts processes as nobody and kills them; CI runs as root")
	}
	t.Setenv("GOMEMLIMIT", "off")
	cfg := `
rules:
  - name: one-a-second
    table: process_groups
    every: 1s
    if: comm == "pkt-rl" && user == "nobody"
    then: [{kill: {comm: pkt-rl, user: nobody, signal: KILL, youngest: 1}}]
`
	procs := sleepers(t, "pkt-rl", 12)
	var killed atomic.Int32
	for _, c := range procs {
		go func() { c.Wait(); killed.Add(1) }() // reaped, so a killed one leaves no zombie to count
	}
	var logs strings.Builder
	d, err := New(Options{LoadConfig: loader(cfg), StateDir: t.TempDir(), Stderr: &syncWriter{w: &logs}, Listen: "off", NoProtect: true, Interval: 2 * time.Second})
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
	key := server.RateLimitKey{Rule: "one-a-second", Kind: "kill"}
	deadline := time.Now().Add(40 * time.Second)
	for d.Health().RateLimited[key] == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("no rate-limited action counted within 40s: %v\n%s", d.Health().RateLimited, logs.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("refused after %d of %d processes were killed; counts %v", killed.Load(), len(procs), d.Health().RateLimited)
	if n := killed.Load(); n != 10 {
		t.Errorf("%d killed before the limit refused, want 10 (the per-rule limit)", n)
	}
	if got := d.Health().RateLimited; len(got) != 1 {
		t.Errorf("rate-limited counts %v, want only %v", got, key)
	}
}
