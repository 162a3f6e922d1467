package notify

import (
	"context"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// hungServer accepts TCP connections and never says a word: a mail server
// whose greeting never comes, or a web server that never answers.
type hungServer struct {
	addr  string
	mu    sync.Mutex
	conns []net.Conn
}

func newHungServer(t *testing.T) *hungServer {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := &hungServer{addr: l.Addr().String()}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			h.mu.Lock()
			h.conns = append(h.conns, c)
			h.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		h.mu.Lock()
		for _, c := range h.conns {
			c.Close()
		}
		h.mu.Unlock()
	})
	return h
}

func (h *hungServer) accepted() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.conns)
}

// A mail delivery ends with its context — its deadline and its
// cancellation — though the server accepted and never greeted, and the
// output's own timeout is 30 s: go-mail alone would wait that long, per
// command.
func TestMailHonoursTheContext(t *testing.T) {
	h := newHungServer(t)
	n := newMailNotifier(t, MailSpec{To: []string{"root@localhost"}, Server: h.addr, Timeout: 30 * time.Second}, testEnv(t))

	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := n.Notify(ctx, stormBatch())
	if took := time.Since(start); err == nil || took > 5*time.Second {
		t.Errorf("deadline 300ms: Notify = %v after %v", err, took)
	}

	ctx, cancel = context.WithCancel(context.Background())
	time.AfterFunc(300*time.Millisecond, cancel)
	start = time.Now()
	err = n.Notify(ctx, stormBatch())
	if took := time.Since(start); err == nil || took > 5*time.Second {
		t.Errorf("cancelled after 300ms: Notify = %v after %v", err, took)
	}
	if h.accepted() != 2 {
		t.Errorf("the server saw %d connections, want 2", h.accepted())
	}
}

// Send never waits on the network, and one hung output holds up only
// itself: beside a mail server that never greets, another output gets its
// batch at once; stopping Run cancels the hung attempt and leaves its
// batch in the spool.
func TestHungOutputHoldsUpOnlyItself(t *testing.T) {
	h := newHungServer(t)
	env := testEnv(t)
	hung := newMailNotifier(t, MailSpec{To: []string{"root@localhost"}, Server: h.addr, Timeout: 30 * time.Second}, env)
	hung2, _ := New("ops2", &MailSpec{To: []string{"root@localhost"}, Server: h.addr, Timeout: 30 * time.Second}, env)
	f := &fakeNotifier{name: "hook"}
	d, err := NewDispatcher(DispatcherOptions{Env: env, Outputs: map[string]Notifier{"ops": hung, "ops2": hung2, "hook": f}})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { d.Run(ctx); close(done) }()

	start := time.Now()
	for i := 0; i < 3; i++ {
		for _, n := range []Notifier{hung, hung2, f} {
			if err := d.Send(context.Background(), n, ruleBatch("storm")); err != nil {
				t.Fatal(err)
			}
		}
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("9 Sends beside two hung mail servers took %v", took)
	}
	if !waitFor(5*time.Second, func() bool { _, got := f.got(); return len(got) == 3 }) {
		_, got := f.got()
		t.Fatalf("the working output got %d of 3 batches while the mail servers hang", len(got))
	}
	if !waitFor(5*time.Second, func() bool { return h.accepted() >= 2 }) {
		t.Fatalf("the mail loops did not try: %d connections", h.accepted())
	}
	start = time.Now()
	stop()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return within 5s of its context ending, with deliveries hung")
	}
	t.Logf("Run stopped %v after its context, with two deliveries hung", time.Since(start).Round(time.Millisecond))
	if d.Pending() != 6 {
		t.Errorf("pending %d, want the 6 undelivered mails kept for the next start", d.Pending())
	}
}

func waitFor(d time.Duration, cond func() bool) bool {
	for deadline := time.Now().Add(d); ; time.Sleep(10 * time.Millisecond) {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
	}
}

// The spool is bounded by count and by bytes: the oldest batches go, and
// the drops are counted by reason.
func TestSpoolBounds(t *testing.T) {
	clock := &fakeClock{now: testNow}
	f := &fakeNotifier{name: "ops", down: true}
	env := Env{Hostname: "moscow", Now: clock.Now, Logger: testSlog(t), StateDir: t.TempDir()}
	d, err := NewDispatcher(DispatcherOptions{Env: env, Outputs: map[string]Notifier{"ops": f}, MaxItems: 3})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, r := range []string{"r1", "r2", "r3", "r4", "r5"} {
		clock.Advance(time.Second)
		if err := d.Send(ctx, f, ruleBatch(r)); err != nil {
			t.Fatal(err)
		}
	}
	st := d.Stats()
	if st.Pending != 3 || st.Dropped[DropCount] != 2 {
		t.Fatalf("count bound: %+v", st)
	}
	if files := spoolFiles(t, filepath.Join(env.StateDir, "spool")); len(files) != 3 {
		t.Errorf("spool files %v", files)
	}
	f.set(func(f *fakeNotifier) { f.down = false })
	if err := d.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if _, got := f.got(); strings.Join(got, ",") != "r3,r4,r5" {
		t.Errorf("delivered %v, want the newest three", got)
	}
	d.Close()

	// By bytes: a spool of two batches (about 450 bytes each).
	f.set(func(f *fakeNotifier) { f.down, f.delivered = true, nil })
	env.StateDir = t.TempDir()
	d, err = NewDispatcher(DispatcherOptions{Env: env, Outputs: map[string]Notifier{"ops": f}, MaxBytes: 1000})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	for i := 0; i < 5; i++ {
		clock.Advance(time.Second)
		if err := d.Send(ctx, f, ruleBatch("b")); err != nil {
			t.Fatal(err)
		}
	}
	st = d.Stats()
	if st.Bytes > 1000 || st.Pending == 0 || st.Pending >= 5 || st.Dropped[DropBytes] != uint64(5-st.Pending) {
		t.Fatalf("bytes bound: %+v", st)
	}
}

// An inline output is built once per name and spec, not once per batch,
// and closed when the outputs are replaced.
func TestInlineOutputsAreCached(t *testing.T) {
	env := testEnv(t)
	d, err := NewDispatcher(DispatcherOptions{Env: env})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	spec := &LogSpec{Path: filepath.Join(t.TempDir(), "inline.log")}
	a, err := d.Inline("r/case#0", spec)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := d.Inline("r/case#0", &LogSpec{Path: spec.Path})
	if a != b {
		t.Error("the same inline output was built twice")
	}
	c, _ := d.Inline("r/case#0", &LogSpec{Path: spec.Path, Format: "json"})
	if c == a {
		t.Error("another spec got the cached output")
	}
	if err := a.Notify(context.Background(), stormBatch()); err != nil {
		t.Fatal(err)
	}
	d.SetOutputs(nil)
	if l := a.(*logNotifier); l.f != nil {
		t.Error("SetOutputs did not close the inline output")
	}
	if n, _ := d.Inline("r/case#0", spec); n == a {
		t.Error("after SetOutputs the closed output was handed out again")
	}
}
