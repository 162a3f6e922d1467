package daemon

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/picket-guard/picket/internal/notify"
	"github.com/picket-guard/picket/internal/testkit"
)

// syncWriter serialises writes from the daemon's goroutines.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

// hungListener accepts TCP connections and never answers: a mail server
// whose greeting never comes, a web server that never replies.
func hungListener(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
	return l.Addr().String()
}

// sleepers starts n sleeping processes named comm as nobody, and reaps
// them itself (the test waits for their exit); the test's cleanup kills
// what is left.
func sleepers(t *testing.T, comm string, n int) []*exec.Cmd {
	t.Helper()
	exe := filepath.Join(testkit.NamedBin(t, comm), comm)
	var cs []*exec.Cmd
	for i := 0; i < n; i++ {
		c := exec.Command(exe, "600")
		c.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		cs = append(cs, c)
	}
	t.Cleanup(func() {
		for _, c := range cs {
			c.Process.Kill()
		}
	})
	return cs
}

// TestKillBesideHungOutputs: a rule tells three outputs that hang (two
// mail servers that accept and never greet, a webhook that never answers)
// and kills. The kill lands within one collection interval of the look
// that decided it; stopping takes seconds, not the outputs' timeouts, and
// the undelivered batches stay in the spool for the next start.
func TestKillBesideHungOutputs(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: starts processes as nobody and kills them; CI runs as root")
	}
	t.Setenv("GOMEMLIMIT", "off")
	mail1, mail2, hook := hungListener(t), hungListener(t), hungListener(t)
	cfg := fmt.Sprintf(`
outputs:
  mail1: {mail: {to: [root@localhost], server: %q, timeout: 30s}}
  mail2: {mail: {to: [root@localhost], server: %q, timeout: 30s}}
  hook: {webhook: {url: "http://%s/alert", timeout: 30s, retries: 0}}
rules:
  - name: hung-storm
    table: process_groups
    every: 1s
    if: comm == "pkt-hung" && count >= 3
    then: [mail1, mail2, hook, {kill: {comm: pkt-hung, user: nobody, signal: KILL}}]
`, mail1, mail2, hook)
	procs := sleepers(t, "pkt-hung", 3)
	exited := make(chan time.Time, len(procs))
	for _, c := range procs {
		go func() { c.Wait(); exited <- time.Now() }()
	}
	state := t.TempDir()
	const interval = 2 * time.Second
	var logs strings.Builder
	d, err := New(Options{LoadConfig: loader(cfg), StateDir: state, Stderr: &syncWriter{w: &logs}, Listen: "off", NoProtect: true, Interval: interval})
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
	var first time.Time
	for deadline := time.Now().Add(20 * time.Second); first.IsZero() && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		first = d.Health().LastCollection
	}
	if first.IsZero() {
		t.Fatal("no collection within 20s")
	}
	var last time.Time
	for range procs {
		select {
		case at := <-exited:
			last = at
		case <-time.After(40 * time.Second):
			t.Fatalf("the kill did not land within 40s of the look beside three hung outputs\n%s", logs.String())
		}
	}
	took := last.Sub(first)
	t.Logf("killed %v after the look that decided it (interval %v)", took.Round(time.Millisecond), interval)
	if took > interval {
		t.Errorf("the kill landed %v after the look, more than one collection interval (%v)", took, interval)
	}

	start := time.Now()
	stop()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("Run did not return within 15s of being stopped, with three hung outputs")
	}
	t.Logf("stopped in %v with three hung outputs", time.Since(start).Round(time.Millisecond))
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("stopping took %v", took)
	}
	done <- nil
	disp, err := notify.NewDispatcher(notify.DispatcherOptions{Dir: filepath.Join(state, "spool"), Env: notify.Env{StateDir: state}})
	if err != nil {
		t.Fatal(err)
	}
	defer disp.Close()
	if n := disp.Pending(); n < 3 {
		t.Errorf("%d batches in the spool after the stop, want the 3 undelivered at least", n)
	}
}

// connCounter is a webhook receiver that counts the connections open to
// it.
type connCounter struct {
	*httptest.Server
	mu       sync.Mutex
	open     map[net.Conn]bool
	requests int
}

func newConnCounter(t *testing.T) *connCounter {
	c := &connCounter{open: map[net.Conn]bool{}}
	c.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		c.mu.Lock()
		c.requests++
		c.mu.Unlock()
	}))
	c.Config.ConnState = func(conn net.Conn, st http.ConnState) {
		c.mu.Lock()
		defer c.mu.Unlock()
		switch st {
		case http.StateNew:
			c.open[conn] = true
		case http.StateClosed, http.StateHijacked:
			delete(c.open, conn)
		}
	}
	c.Start()
	t.Cleanup(c.Close)
	return c
}

func (c *connCounter) state() (open, requests int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.open), c.requests
}

// An inline output is built once and kept, not rebuilt per batch (each
// rebuilt webhook kept its own idle connection open); a reload closes it.
func TestInlineOutputIsKeptThenClosed(t *testing.T) {
	t.Setenv("GOMEMLIMIT", "off")
	srv := newConnCounter(t)
	cfg := fmt.Sprintf(`
rules:
  - name: always
    table: kernel
    every: 1s
    renotify: 1s
    if: pid_max > 0
    then: [{webhook: {url: %q, retries: 0}}]
`, srv.URL+"/alert")
	d, err := New(Options{LoadConfig: loader(cfg), StateDir: t.TempDir(), Stderr: io.Discard, Listen: "off", NoProtect: true, Interval: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	reload := make(chan struct{})
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx, reload) }()
	defer func() { stop(); <-done }()
	deadline := time.Now().Add(30 * time.Second)
	for _, req := srv.state(); req < 5 && time.Now().Before(deadline); _, req = srv.state() {
		time.Sleep(50 * time.Millisecond)
	}
	open, req := srv.state()
	t.Logf("%d batches delivered over %d connections", req, open)
	if req < 5 {
		t.Fatalf("only %d batches delivered", req)
	}
	if open > 1 {
		t.Errorf("%d connections open for %d batches of one inline output, want 1", open, req)
	}
	srv.mu.Lock()
	before := map[net.Conn]bool{}
	for c := range srv.open {
		before[c] = true
	}
	srv.mu.Unlock()
	reload <- struct{}{}
	closed := func() bool {
		srv.mu.Lock()
		defer srv.mu.Unlock()
		for c := range before {
			if srv.open[c] {
				return false
			}
		}
		return true
	}
	for deadline := time.Now().Add(5 * time.Second); !closed() && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
	if !closed() {
		t.Error("the reload did not close the inline output's connection")
	}
}

// TestKillWarns: a kill with warn: tells the rule's outputs (here a real
// webhook receiver) which processes it will kill and when, then waits the
// warning out, then kills.
func TestKillWarns(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: starts processes as nobody and kills them; CI runs as root")
	}
	type post struct {
		at   time.Time
		body string
	}
	posts := make(chan post, 16)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		posts <- post{time.Now(), string(b)}
	}))
	t.Cleanup(hook.Close)
	const warn = 1500 * time.Millisecond
	cfg := fmt.Sprintf(`
outputs:
  hook: {webhook: {url: "%s/alert", timeout: 5s}}
rules:
  - name: warned-storm
    table: process_groups
    every: 1s
    if: comm == "pkt-warned" && count >= 2
    then: [hook, {kill: {comm: pkt-warned, user: nobody, signal: KILL, warn: %v}}]
`, hook.URL, warn)
	procs := sleepers(t, "pkt-warned", 2)
	exited := make(chan time.Time, len(procs))
	for _, c := range procs {
		go func() { c.Wait(); exited <- time.Now() }()
	}
	var logs strings.Builder
	d, err := New(Options{LoadConfig: loader(cfg), StateDir: t.TempDir(), Stderr: &syncWriter{w: &logs}, Listen: "off", NoProtect: true, Interval: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx, nil) }()
	defer func() { stop(); <-done }()
	var warned time.Time
	for deadline := time.After(30 * time.Second); warned.IsZero(); {
		select {
		case p := <-posts:
			if strings.Contains(p.body, "picket kills 2 processes in 1.5s") {
				warned = p.at
			}
		case <-exited:
			t.Fatalf("killed before any warning reached the webhook\n%s", logs.String())
		case <-deadline:
			t.Fatalf("no warning within 30s\n%s", logs.String())
		}
	}
	for range procs {
		select {
		case at := <-exited:
			if gap := at.Sub(warned); gap < warn-200*time.Millisecond {
				t.Errorf("killed %v after the warning, want the %v of warn:", gap, warn)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("not killed within 30s of the warning\n%s", logs.String())
		}
	}
}
