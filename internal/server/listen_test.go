package server

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/picket-guard/picket/internal/testkit"
)

// serve runs ListenAndServe on 127.0.0.1:0 and returns its base URL and
// the channel its result arrives on.
func serve(t *testing.T, ctx context.Context, s *Server) (string, <-chan error) {
	t.Helper()
	done := testkit.Serve(t, ctx, s)
	return "http://" + s.Addr().String(), done
}

func TestListenAndServe(t *testing.T) {
	src := loadedSource(t)
	src.block, src.entered = make(chan struct{}), make(chan struct{})
	s := newServer(t, Options{Source: src, Listen: "127.0.0.1:0"})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	base, done := serve(t, ctx, s)

	resp, err := http.Get(base + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"status":"ok"`) || resp.Header.Get("X-Frame-Options") != "DENY" {
		t.Fatalf("healthz over TCP: %d %s", resp.StatusCode, body)
	}
	resp, err = http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), "picket_sockstat_tcp_orphans 21564") {
		t.Fatalf("metrics over TCP: %d", resp.StatusCode)
	}

	// Headers beyond the bound are refused.
	req, _ := http.NewRequest("GET", base+"/healthz", nil)
	req.Header.Set("X-Big", strings.Repeat("a", 64<<10))
	if resp, err := http.DefaultClient.Do(req); err != nil {
		t.Errorf("64 KiB header: %v", err)
	} else {
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
			t.Errorf("64 KiB header: %d", resp.StatusCode)
		}
	}

	// A second server cannot take the same address.
	s2 := newServer(t, Options{Source: src, Listen: s.Addr().String()})
	if err := s2.ListenAndServe(ctx); err == nil || !strings.Contains(err.Error(), "listen") {
		t.Errorf("second listener: %v", err)
	}

	// Graceful shutdown: a request in flight finishes, new connections are
	// refused, and ListenAndServe returns nil.
	inflight := make(chan string, 1)
	go func() {
		resp, err := http.Get(base + "/api/v1/journal")
		if err != nil {
			inflight <- err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		inflight <- resp.Status + " " + string(b)
	}()
	<-src.entered
	cancel()
	deadline := time.Now().Add(3 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", s.Addr().String(), time.Second)
		if err != nil {
			break
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatal("still accepting connections 3s after shutdown began")
		}
		time.Sleep(10 * time.Millisecond)
	}
	select {
	case err := <-done:
		t.Fatalf("returned with a request in flight: %v", err)
	default:
	}
	close(src.block)
	if got := <-inflight; !strings.HasPrefix(got, "200 OK") || !strings.Contains(got, "3f9c2a") {
		t.Errorf("request in flight at shutdown: %s", got)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("ListenAndServe after shutdown: %v", err)
		}
	case <-time.After(shutdownTimeout + 2*time.Second):
		t.Fatal("ListenAndServe did not return")
	}
}

// TestSlowClient: a client that opens a connection and never finishes its
// headers is cut off (slowloris would otherwise hold fds picket needs).
func TestSlowClient(t *testing.T) {
	t.Parallel()
	s := newServer(t, Options{Source: loadedSource(t), Listen: "127.0.0.1:0"})
	ctx, cancel := context.WithCancel(context.Background())
	base, done := serve(t, ctx, s)
	defer func() { cancel(); <-done }()
	c, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n"); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	c.SetReadDeadline(start.Add(readHeaderTimeout + 5*time.Second))
	_, err = bufio.NewReader(c).ReadString('\n')
	if err == nil || errors.Is(err, context.DeadlineExceeded) || time.Since(start) > readHeaderTimeout+4*time.Second {
		t.Errorf("slow client still connected after %s (err %v)", time.Since(start).Round(time.Millisecond), err)
	}
}
