package testkit

import (
	"testing"
	"time"
)

// Eventually polls cond every 10 ms until it holds, and fails the test
// saying what it waited for if limit passes first. cond runs on the test's
// goroutine, so it may itself fail the test (a server that exited while
// the test waited for it to listen).
func Eventually(t testing.TB, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("no %s within %s", what, limit)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
