package notify

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/picket-guard/picket/internal/alarm"
)

type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// fakeNotifier records the rules of the batches it delivered; while down it
// fails every attempt.
type fakeNotifier struct {
	name string

	mu        sync.Mutex
	down      bool
	permanent bool
	panics    bool
	attempts  int
	delivered []string
}

func (f *fakeNotifier) Name() string { return f.name }

func (f *fakeNotifier) Notify(ctx context.Context, b alarm.Batch) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.attempts++
	switch {
	case f.panics:
		panic("boom")
	case f.permanent:
		return Permanent(errors.New("refused for good"))
	case f.down:
		return errors.New("connection refused")
	}
	f.delivered = append(f.delivered, b.Rule)
	return nil
}

func (f *fakeNotifier) set(fn func(f *fakeNotifier)) { f.mu.Lock(); fn(f); f.mu.Unlock() }
func (f *fakeNotifier) got() (int, []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.attempts, append([]string(nil), f.delivered...)
}

func ruleBatch(rule string) alarm.Batch {
	b := procBatch(alarm.Firing, procRow("alice", "imapd", 93))
	b.Rule = rule
	for i := range b.Alarms {
		b.Alarms[i].Rule = rule
	}
	return b
}

func newTestDispatcher(t *testing.T, dir string, clock *fakeClock, outputs map[string]Notifier) *Dispatcher {
	t.Helper()
	env := Env{Hostname: "moscow", Now: clock.Now, Logger: testSlog(t), StateDir: dir}
	d, err := NewDispatcher(DispatcherOptions{Env: env, Outputs: outputs, MaxAge: time.Hour, MinBackoff: 10 * time.Second, MaxBackoff: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// Batches of one output arrive in the order they were sent, even when the
// first ones waited in the spool: a resolve never overtakes its alarm.
func TestDispatcherKeepsOrderPerOutput(t *testing.T) {
	clock := &fakeClock{now: testNow}
	f := &fakeNotifier{name: "ops", down: true}
	d := newTestDispatcher(t, t.TempDir(), clock, map[string]Notifier{"ops": f})
	ctx := context.Background()
	// Send spools; the delivery (here a pass, in the daemon the output's
	// loop) sends.
	if err := d.Send(ctx, f, ruleBatch("first")); err != nil {
		t.Fatalf("Send = %v", err)
	}
	if err := d.pass(ctx, true); err == nil {
		t.Fatal("delivered while the output is down")
	}
	f.set(func(f *fakeNotifier) { f.down = false })
	clock.Advance(time.Second)
	// The output has a batch waiting: this one queues behind without trying.
	if err := d.Send(ctx, f, ruleBatch("second")); err != nil {
		t.Fatalf("Send behind a pending batch = %v", err)
	}
	if attempts, _ := f.got(); attempts != 1 {
		t.Fatalf("%d attempts, want 1 (the second batch must wait its turn)", attempts)
	}
	if d.Pending() != 2 {
		t.Fatalf("Pending = %d", d.Pending())
	}
	if err := d.Send(ctx, f, ruleBatch("third")); err != nil {
		t.Fatal(err)
	}
	if err := d.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if _, got := f.got(); strings.Join(got, ",") != "first,second,third" {
		t.Fatalf("delivered %v", got)
	}
	if d.Pending() != 0 {
		t.Fatalf("Pending = %d after delivery", d.Pending())
	}
}

// Run's passes honour the backoff; Flush does not.
func TestDispatcherBackoff(t *testing.T) {
	clock := &fakeClock{now: testNow}
	f := &fakeNotifier{name: "ops", down: true}
	d := newTestDispatcher(t, t.TempDir(), clock, map[string]Notifier{"ops": f})
	ctx := context.Background()
	_ = d.Send(ctx, f, ruleBatch("r"))
	_ = d.pass(ctx, true) // attempt 1 fails: next in 10s
	tries := func() int { n, _ := f.got(); return n }

	clock.Advance(5 * time.Second)
	_ = d.pass(ctx, true)
	if tries() != 1 {
		t.Fatalf("retried before the backoff passed (%d attempts)", tries())
	}
	clock.Advance(6 * time.Second) // 11s
	_ = d.pass(ctx, true)
	if tries() != 2 {
		t.Fatalf("%d attempts at 11s, want 2", tries())
	}
	clock.Advance(15 * time.Second) // next was 11s+20s
	_ = d.pass(ctx, true)
	if tries() != 2 {
		t.Fatalf("the second backoff did not double (%d attempts)", tries())
	}
	if next, ok := d.nextDue(); !ok || !next.Equal(testNow.Add(31*time.Second)) {
		t.Fatalf("nextDue = %v, want +31s", next.Sub(testNow))
	}
	_ = d.Flush(ctx)
	if tries() != 3 {
		t.Fatalf("Flush did not try now (%d attempts)", tries())
	}
}

func TestDispatcherExpires(t *testing.T) {
	clock := &fakeClock{now: testNow}
	f := &fakeNotifier{name: "ops", down: true}
	dir := t.TempDir()
	d := newTestDispatcher(t, dir, clock, map[string]Notifier{"ops": f})
	ctx := context.Background()
	_ = d.Send(ctx, f, ruleBatch("r"))
	clock.Advance(2 * time.Hour)
	f.set(func(f *fakeNotifier) { f.down = false })
	_ = d.Flush(ctx)
	if _, got := f.got(); len(got) != 0 || d.Pending() != 0 {
		t.Fatalf("expired batch delivered %v, pending %d", got, d.Pending())
	}
	if files := spoolFiles(t, filepath.Join(dir, "spool")); len(files) != 0 {
		t.Fatalf("spool holds %v", files)
	}
}

func TestDispatcherPermanentAndPanic(t *testing.T) {
	clock := &fakeClock{now: testNow}
	f := &fakeNotifier{name: "ops", permanent: true}
	d := newTestDispatcher(t, t.TempDir(), clock, map[string]Notifier{"ops": f})
	ctx := context.Background()
	if err := d.Send(ctx, f, ruleBatch("r")); err != nil {
		t.Fatal(err)
	}
	if err := d.Flush(ctx); err != nil || d.Pending() != 0 || d.Stats().Dropped[DropPermanent] != 1 {
		t.Fatalf("permanent failure: err %v, pending %d, dropped %v", err, d.Pending(), d.Stats().Dropped)
	}
	f.set(func(f *fakeNotifier) { f.permanent, f.panics = false, true })
	if err := d.Send(ctx, f, ruleBatch("r")); err != nil {
		t.Fatal(err)
	}
	if err := d.Flush(ctx); err == nil || !strings.Contains(err.Error(), "panicked") || d.Pending() != 1 {
		t.Fatalf("panicking notifier: %v, pending %d", err, d.Pending())
	}
	f.set(func(f *fakeNotifier) { f.panics = false })
	if err := d.Flush(ctx); err != nil || d.Pending() != 0 {
		t.Fatalf("Flush = %v, pending %d", err, d.Pending())
	}
}

// A batch for an output removed from the configuration waits (with a
// warning) until the output comes back or the batch expires.
func TestDispatcherMissingOutputWaits(t *testing.T) {
	clock := &fakeClock{now: testNow}
	dir := t.TempDir()
	f := &fakeNotifier{name: "ops", down: true}
	d1 := newTestDispatcher(t, dir, clock, map[string]Notifier{"ops": f})
	_ = d1.Send(context.Background(), f, ruleBatch("r"))
	d1.Close()

	d2 := newTestDispatcher(t, dir, clock, nil)
	if d2.Pending() != 1 {
		t.Fatalf("Pending = %d", d2.Pending())
	}
	if err := d2.Flush(context.Background()); err == nil || !strings.Contains(err.Error(), `no output named "ops"`) {
		t.Fatalf("Flush = %v", err)
	}
	if d2.Pending() != 1 {
		t.Fatalf("the batch of a missing output was dropped")
	}
	f2 := &fakeNotifier{name: "ops"}
	d2.SetOutputs(map[string]Notifier{"ops": f2})
	if err := d2.Flush(context.Background()); err != nil || d2.Pending() != 0 {
		t.Fatalf("Flush = %v, pending %d", err, d2.Pending())
	}
	if _, got := f2.got(); len(got) != 1 {
		t.Fatalf("delivered %v", got)
	}
}

// An output the configuration does not name (inline in a rule) is rebuilt
// from the spec spooled with it.
func TestDispatcherRebuildsInlineOutput(t *testing.T) {
	h := newHookServer(t, 503, 200)
	clock := &fakeClock{now: testNow}
	dir := t.TempDir()
	env := Env{Now: clock.Now, Logger: testSlog(t)}
	n, err := New("ProcNumChkRed/imapd#0", &WebhookSpec{URL: h.URL, Retries: intp(0), Timeout: 5 * time.Second}, env)
	if err != nil {
		t.Fatal(err)
	}
	d1 := newTestDispatcher(t, dir, clock, nil)
	if err := d1.Send(context.Background(), n, stormBatch()); err != nil {
		t.Fatalf("Send = %v", err)
	}
	if err := d1.Flush(context.Background()); err == nil {
		t.Fatal("delivered to a server answering 503")
	}
	d1.Close()
	d2 := newTestDispatcher(t, dir, clock, nil)
	if err := d2.Flush(context.Background()); err != nil || d2.Pending() != 0 {
		t.Fatalf("Flush = %v, pending %d", err, d2.Pending())
	}
	if h.requests() != 2 {
		t.Fatalf("%d requests, want 2", h.requests())
	}
}

func TestSpoolSetsAsideBadFilesAndCleansTemp(t *testing.T) {
	clock := &fakeClock{now: testNow}
	dir := t.TempDir()
	sp := filepath.Join(dir, "spool")
	if err := os.MkdirAll(sp, 0o700); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(sp, "00000000000000000001-aaaa.json"), []byte("{not json"), 0o600)
	os.WriteFile(filepath.Join(sp, ".tmp.00000000000000000002-bbbb.json"), []byte(`{"version":1`), 0o600)
	d := newTestDispatcher(t, dir, clock, nil)
	if d.Pending() != 0 {
		t.Fatalf("Pending = %d", d.Pending())
	}
	files := spoolFiles(t, sp)
	if len(files) != 1 || files[0] != "00000000000000000001-aaaa.json.bad" {
		t.Fatalf("spool holds %v", files)
	}
	st, err := os.Stat(sp)
	if err != nil || st.Mode().Perm() != 0o700 {
		t.Fatalf("spool dir mode %v (%v)", st.Mode().Perm(), err)
	}
}

// A log output is not written to the spool first, only when it fails.
func TestDispatcherLocalOutputSpoolsOnlyOnFailure(t *testing.T) {
	clock := &fakeClock{now: testNow}
	dir := t.TempDir()
	env := Env{Now: clock.Now, Logger: testSlog(t)}
	blocker := filepath.Join(dir, "not-a-dir")
	os.WriteFile(blocker, nil, 0o600)
	bad, err := New("diag", &LogSpec{Path: filepath.Join(blocker, "x.log")}, env)
	if err != nil {
		t.Fatal(err)
	}
	good, err := New("good", &LogSpec{Path: filepath.Join(dir, "good.log")}, env)
	if err != nil {
		t.Fatal(err)
	}
	d := newTestDispatcher(t, dir, clock, map[string]Notifier{"diag": bad, "good": good})
	if err := d.Send(context.Background(), good, stormBatch()); err != nil || d.Pending() != 0 {
		t.Fatalf("Send = %v, pending %d", err, d.Pending())
	}
	if err := d.Send(context.Background(), bad, stormBatch()); !errors.Is(err, ErrSpooled) || d.Pending() != 1 {
		t.Fatalf("Send = %v, pending %d", err, d.Pending())
	}
}

// Many rules at once, an output that comes and goes: every batch arrives
// exactly once.
func TestDispatcherConcurrentSends(t *testing.T) {
	clock := &fakeClock{now: testNow}
	f := &fakeNotifier{name: "ops"}
	d := newTestDispatcher(t, t.TempDir(), clock, map[string]Notifier{"ops": f})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	runDone := make(chan struct{})
	go func() { d.Run(ctx); close(runDone) }()
	var wg sync.WaitGroup
	const senders, each = 8, 25
	for s := 0; s < senders; s++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				if i%10 == 3 {
					f.set(func(f *fakeNotifier) { f.down = !f.down })
				}
				err := d.Send(ctx, f, ruleBatch(fmt.Sprintf("r%d-%d", s, i)))
				if err != nil && !errors.Is(err, ErrSpooled) {
					t.Errorf("Send: %v", err)
				}
				clock.Advance(time.Second)
			}
		}()
	}
	wg.Wait()
	f.set(func(f *fakeNotifier) { f.down = false })
	if err := d.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	cancel()
	<-runDone
	_, got := f.got()
	seen := map[string]int{}
	for _, r := range got {
		seen[r]++
	}
	if len(got) != senders*each || len(seen) != senders*each || d.Pending() != 0 {
		t.Fatalf("delivered %d (%d distinct), want %d; pending %d", len(got), len(seen), senders*each, d.Pending())
	}
}

// The clock steps back (NTP) between two batches: they still go out in the
// order they were sent, in this run and after a restart.
func TestDispatcherOrderSurvivesClockStep(t *testing.T) {
	clock := &fakeClock{now: testNow}
	dir := t.TempDir()
	f := &fakeNotifier{name: "ops", down: true}
	d1 := newTestDispatcher(t, dir, clock, map[string]Notifier{"ops": f})
	ctx := context.Background()
	_ = d1.Send(ctx, f, ruleBatch("first"))
	clock.Advance(-time.Hour)
	_ = d1.Send(ctx, f, ruleBatch("second"))
	d1.Close()
	d2 := newTestDispatcher(t, dir, clock, map[string]Notifier{"ops": f})
	_ = d2.Send(ctx, f, ruleBatch("third")) // ids keep growing after a restart too
	f.set(func(f *fakeNotifier) { f.down = false })
	if err := d2.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if _, got := f.got(); strings.Join(got, ",") != "first,second,third" {
		t.Fatalf("delivered %v", got)
	}
}

func TestDispatcherReopen(t *testing.T) {
	clock := &fakeClock{now: testNow}
	dir := t.TempDir()
	path := filepath.Join(dir, "picket.log")
	n, err := New("diag", &LogSpec{Path: path}, Env{Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	d := newTestDispatcher(t, dir, clock, map[string]Notifier{"diag": n})
	ctx := context.Background()
	if err := d.Send(ctx, n, stormBatch()); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	if err := d.Reopen(); err != nil {
		t.Fatal(err)
	}
	if err := d.Send(ctx, n, ruleBatch("after")); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path); strings.Count(string(b), "\n") != 1 || !strings.Contains(string(b), "rule=after") {
		t.Fatalf("after Reopen the log holds:\n%s", b)
	}
}

// TestDispatcherReopenReportsWhatFailed: logrotate's SIGHUP finds one log
// output's directory replaced by a file (as root no permission stops the
// reopen; a path whose parent is not a directory does). Reopen says which
// output and which file, and the other log output is reopened all the same.
func TestDispatcherReopenReportsWhatFailed(t *testing.T) {
	clock := &fakeClock{now: testNow}
	dir := t.TempDir()
	good := filepath.Join(dir, "picket.log")
	gone := filepath.Join(dir, "gone", "alerts.log")
	env := Env{Now: clock.Now}
	ng, err := New("diag", &LogSpec{Path: good}, env)
	if err != nil {
		t.Fatal(err)
	}
	nb, err := New("alerts", &LogSpec{Path: gone}, env)
	if err != nil {
		t.Fatal(err)
	}
	d := newTestDispatcher(t, dir, clock, map[string]Notifier{"diag": ng, "alerts": nb})
	ctx := context.Background()
	for _, n := range []Notifier{ng, nb} {
		if err := d.Send(ctx, n, stormBatch()); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := os.Stat(gone); err != nil {
		t.Fatalf("the log output was not written before the rotation, so the test proves nothing: %v", err)
	}
	if err := os.RemoveAll(filepath.Dir(gone)); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Dir(gone), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(good, good+".1"); err != nil {
		t.Fatal(err)
	}
	err = d.Reopen()
	if err == nil {
		t.Fatal("Reopen = nil, but the alerts output's directory is a file")
	}
	if !strings.Contains(err.Error(), "output alerts") || !strings.Contains(err.Error(), gone) {
		t.Errorf("Reopen = %v, want it to name the output alerts and %s", err, gone)
	}
	if strings.Contains(err.Error(), "diag") {
		t.Errorf("Reopen = %v, names the output that reopened", err)
	}
	if err := d.Send(ctx, ng, ruleBatch("after")); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(good); strings.Count(string(b), "\n") != 1 || !strings.Contains(string(b), "rule=after") {
		t.Fatalf("the other log output was not reopened; its new file holds:\n%s", b)
	}
}

// TestLogReopenAndCloseLeaveNoFile: a log output reopened by every SIGHUP
// of a long life (logrotate, daily) holds one file, not one more each
// time, and holds none once closed.
func TestLogReopenAndCloseLeaveNoFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "picket.log")
	open := func() int {
		t.Helper()
		ents, err := os.ReadDir("/proc/self/fd")
		if err != nil {
			t.Skipf("no /proc/self/fd: %v", err)
		}
		n := 0
		for _, e := range ents {
			if l, err := os.Readlink("/proc/self/fd/" + e.Name()); err == nil && strings.HasPrefix(l, path) {
				n++
			}
		}
		return n
	}
	n, err := New("diag", &LogSpec{Path: path}, Env{Now: (&fakeClock{now: testNow}).Now})
	if err != nil {
		t.Fatal(err)
	}
	r, ok := n.(Reopener)
	if !ok {
		t.Fatal("a log output is no Reopener")
	}
	if err := n.Notify(context.Background(), stormBatch()); err != nil {
		t.Fatal(err)
	}
	for range 20 {
		if err := r.Reopen(); err != nil {
			t.Fatal(err)
		}
	}
	if got := open(); got != 1 {
		t.Errorf("after 20 reopens the output holds %d files of %s, want 1", got, path)
	}
	if c, ok := n.(interface{ Close() error }); !ok {
		t.Fatal("a log output cannot be closed")
	} else if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if got := open(); got != 0 {
		t.Errorf("closed, the output still holds %d files of %s", got, path)
	}
}
