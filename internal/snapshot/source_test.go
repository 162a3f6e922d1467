package snapshot

import (
	"errors"
	"testing"
)

// TestSourceError: an error is found by its source's name, whole, and the
// text recorded is what the JSON errors list has always held.
func TestSourceError(t *testing.T) {
	var s Snapshot
	s.AddError(SourceLimits, errors.New("/proc/sys/fs/file-nr:1: field 2: invalid syntax"))
	s.AddError(SourceConntrack, errors.New("/proc/sys/net/netfilter/nf_conntrack_max:1: field 1: invalid syntax"))
	if s.Errors[0] != "limits: /proc/sys/fs/file-nr:1: field 2: invalid syntax" {
		t.Errorf("recorded as %q", s.Errors[0])
	}
	if e, ok := s.SourceError(SourceConntrack); !ok || e != s.Errors[1] {
		t.Errorf("conntrack: %q %v", e, ok)
	}
	if _, ok := s.SourceError(SourcePSI); ok {
		t.Error("psi has an error it was never given")
	}
	s.Errors = []string{"limitsx: something"}
	if _, ok := s.SourceError(SourceLimits); ok {
		t.Error("another source's name, prefixed, is taken for limits")
	}
}
