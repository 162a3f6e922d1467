package notify

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// With no backoff configured an output that fails waits 10s, then twice
// as long per failure in a row, never more than 10m.
func TestDispatcherDefaultBackoff(t *testing.T) {
	clock := &fakeClock{now: testNow}
	f := &fakeNotifier{name: "ops", down: true}
	env := Env{Hostname: "moscow", Now: clock.Now, Logger: testSlog(t), StateDir: t.TempDir()}
	d, err := NewDispatcher(DispatcherOptions{Env: env, Outputs: map[string]Notifier{"ops": f}})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	ctx := context.Background()
	_ = d.Send(ctx, f, ruleBatch("r"))
	want := []time.Duration{10 * time.Second, 20 * time.Second, 40 * time.Second, 80 * time.Second, 160 * time.Second,
		320 * time.Second, 10 * time.Minute, 10 * time.Minute}
	for i, w := range want {
		_ = d.Flush(ctx) // not running: tries now, backoff or not
		if next, ok := d.nextDue(); !ok || next.Sub(clock.Now()) != w {
			t.Fatalf("after failure %d the output waits %v, want %v", i+1, next.Sub(clock.Now()), w)
		}
	}
	// A maximum below the minimum is raised to it: the minimum is what an
	// administrator asked the receiver be spared.
	d.Close()
	d, err = NewDispatcher(DispatcherOptions{Env: env, Outputs: map[string]Notifier{"ops": f}, MinBackoff: time.Hour, MaxBackoff: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	_ = d.Flush(ctx)
	if next, _ := d.nextDue(); next.Sub(clock.Now()) != time.Hour {
		t.Fatalf("waits %v, want the 1h minimum", next.Sub(clock.Now()))
	}
}

// Every failed attempt is on disk with the batch: a restart knows how
// often it was tried and why it failed.
func TestDispatcherRecordsAttempts(t *testing.T) {
	clock := &fakeClock{now: testNow}
	f := &fakeNotifier{name: "ops", down: true}
	dir := t.TempDir()
	d := newTestDispatcher(t, dir, clock, map[string]Notifier{"ops": f})
	ctx := context.Background()
	_ = d.Send(ctx, f, ruleBatch("r"))
	for range 3 {
		_ = d.Flush(ctx)
		clock.Advance(time.Second)
	}
	names, _ := filepath.Glob(filepath.Join(dir, "spool", "*.json"))
	if len(names) != 1 {
		t.Fatalf("spool holds %q", names)
	}
	b, err := os.ReadFile(names[0])
	if err != nil {
		t.Fatal(err)
	}
	var it struct {
		Attempts    int       `json:"attempts"`
		LastAttempt time.Time `json:"last_attempt"`
		LastError   string    `json:"last_error"`
	}
	if err := json.Unmarshal(b, &it); err != nil {
		t.Fatal(err)
	}
	if it.Attempts != 3 || !it.LastAttempt.Equal(testNow.Add(2*time.Second)) || it.LastError != "connection refused" {
		t.Fatalf("spooled attempts %d, last %v, error %q; want 3, +2s, connection refused", it.Attempts, it.LastAttempt.Sub(testNow), it.LastError)
	}
}

// One Run at a time, and none after Close: two would deliver every batch
// twice.
func TestDispatcherRunsOnce(t *testing.T) {
	d := newTestDispatcher(t, t.TempDir(), &fakeClock{now: testNow}, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	for deadline := time.Now().Add(10 * time.Second); ; {
		d.mu.Lock()
		running := d.runCtx != nil
		d.mu.Unlock()
		if running {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("Run did not start")
		}
		time.Sleep(time.Millisecond)
	}
	if err := d.Run(ctx); err == nil {
		t.Error("a second Run was let run")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run = %v", err)
	}
	d.Close()
	if err := d.Run(context.Background()); err == nil {
		t.Error("Run after Close was let run")
	}
}

// Flush while Run runs reports the outputs that still failed, and nothing
// once they deliver.
func TestDispatcherFlushWhileRunning(t *testing.T) {
	f := &fakeNotifier{name: "ops", down: true}
	d := newTestDispatcher(t, t.TempDir(), &fakeClock{now: testNow}, map[string]Notifier{"ops": f})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	defer func() { cancel(); <-done }()
	if err := d.Send(ctx, f, ruleBatch("r")); err != nil {
		t.Fatal(err)
	}
	if err := d.Flush(ctx); err == nil || !strings.Contains(err.Error(), "output ops") {
		t.Fatalf("Flush with ops down = %v, want its failure", err)
	}
	f.set(func(f *fakeNotifier) { f.down = false })
	if err := d.Flush(ctx); err != nil || d.Pending() != 0 {
		t.Fatalf("Flush with ops up = %v, pending %d", err, d.Pending())
	}
}

// A log output that failed keeps its order: while its batch waits in the
// spool, the next one queues behind it instead of being written first;
// another log output is not held up.
func TestDispatcherLocalOutputQueuesBehindItsSpool(t *testing.T) {
	clock := &fakeClock{now: testNow}
	dir := t.TempDir()
	env := Env{Now: clock.Now, Logger: testSlog(t)}
	logDir := filepath.Join(dir, "logs")
	if err := os.WriteFile(logDir, nil, 0o600); err != nil { // a file where the directory should be
		t.Fatal(err)
	}
	bad, err := New("diag", &LogSpec{Path: filepath.Join(logDir, "x.log")}, env)
	if err != nil {
		t.Fatal(err)
	}
	good, err := New("good", &LogSpec{Path: filepath.Join(dir, "good.log")}, env)
	if err != nil {
		t.Fatal(err)
	}
	d := newTestDispatcher(t, dir, clock, map[string]Notifier{"diag": bad, "good": good})
	ctx := context.Background()
	if err := d.Send(ctx, bad, ruleBatch("first")); !errors.Is(err, ErrSpooled) {
		t.Fatalf("Send = %v, want it spooled", err)
	}
	if err := d.Send(ctx, bad, ruleBatch("second")); err != nil || d.Pending() != 2 {
		t.Fatalf("Send behind a spooled batch = %v, pending %d; want it queued", err, d.Pending())
	}
	if err := d.Send(ctx, good, ruleBatch("other")); err != nil || d.Pending() != 2 {
		t.Fatalf("Send to another log = %v, pending %d; want it written now", err, d.Pending())
	}
	if err := os.Remove(logDir); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(logDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := d.Flush(ctx); err != nil || d.Pending() != 0 {
		t.Fatalf("Flush = %v, pending %d", err, d.Pending())
	}
	b, err := os.ReadFile(filepath.Join(logDir, "x.log"))
	if err != nil {
		t.Fatal(err)
	}
	if i, j := strings.Index(string(b), "first"), strings.Index(string(b), "second"); i < 0 || j < i {
		t.Fatalf("log out of order:\n%s", b)
	}
}

// An inline output is built once per name and spec: the same spec gets the
// same notifier, a changed spec under the same name a new one.
func TestDispatcherInlineKeyedBySpec(t *testing.T) {
	d := newTestDispatcher(t, t.TempDir(), &fakeClock{now: testNow}, nil)
	spec := func(url string) Spec { return &WebhookSpec{URL: url, Retries: intp(0), Timeout: 5 * time.Second} }
	a, err := d.Inline("hook", spec("http://127.0.0.1:9/a"))
	if err != nil {
		t.Fatal(err)
	}
	again, err := d.Inline("hook", spec("http://127.0.0.1:9/a"))
	if err != nil {
		t.Fatal(err)
	}
	other, err := d.Inline("hook", spec("http://127.0.0.1:9/b"))
	if err != nil {
		t.Fatal(err)
	}
	if again != a {
		t.Error("the same spec built a second notifier")
	}
	if other == a {
		t.Error("a changed spec under the same name got the old notifier")
	}
}
