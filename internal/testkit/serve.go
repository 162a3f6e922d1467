package testkit

import (
	"context"
	"net"
	"testing"
	"time"
)

// A Server listens on the address it picks (127.0.0.1:0) and serves until
// its context ends; picket's server.Server is one.
type Server interface {
	ListenAndServe(context.Context) error
	Addr() net.Addr // nil until it listens
}

// Serve runs s.ListenAndServe(ctx) and returns once s listens, with the
// channel its result arrives on. It fails the test if s returns first, or
// does not listen within 10 s; s is stopped when the test ends, if ctx has
// not stopped it before.
func Serve(t testing.TB, ctx context.Context, s Server) <-chan error {
	t.Helper()
	ctx, cancel := context.WithCancel(ctx)
	t.Cleanup(cancel)
	done := make(chan error, 1)
	go func() { done <- s.ListenAndServe(ctx) }()
	Eventually(t, 10*time.Second, "listening server", func() bool {
		select {
		case err := <-done:
			t.Fatalf("ListenAndServe returned before it listened: %v", err)
		default:
		}
		return s.Addr() != nil
	})
	return done
}
