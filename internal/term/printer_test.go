package term

import (
	"errors"
	"testing"
)

// brokenPipe accepts n writes, then fails every one.
type brokenPipe struct{ n, calls int }

var errPipe = errors.New("broken pipe")

func (b *brokenPipe) Write(p []byte) (int, error) {
	b.calls++
	if b.calls > b.n {
		return 0, errPipe
	}
	return len(p), nil
}

// TestPrinter: the first write error is kept and returned; nothing is
// written after it.
func TestPrinter(t *testing.T) {
	w := &brokenPipe{n: 1}
	p := NewPrinter(w)
	p.Printf("one %d\n", 1)
	if p.Err() != nil {
		t.Fatalf("Err after a good write: %v", p.Err())
	}
	p.Printf("two\n")
	p.Printf("three\n")
	if _, err := p.Write([]byte("four")); !errors.Is(err, errPipe) {
		t.Errorf("Write after the error: %v", err)
	}
	if !errors.Is(p.Err(), errPipe) || w.calls != 2 {
		t.Errorf("Err %v after %d writes, want the pipe's error after 2", p.Err(), w.calls)
	}
}
