package snapshot

import (
	"errors"
	"strings"
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

func TestSummaryForecasts(t *testing.T) {
	s := &Snapshot{Forecasts: []Forecast{{Limit: "RLIMIT_NOFILE", PID: 42, Comm: "leaky\x1b[2J", Used: 900, Max: 1024, ETASeconds: 7800, RatePerSecond: 0.5, WindowSeconds: 2700}}}
	var b strings.Builder
	if err := WriteSummary(&b, s, SummaryOptions{}); err != nil {
		t.Fatal(err)
	}
	if want := `RLIMIT_NOFILE pid 42 (leaky\x1b[2J)  900/1024  full in 2h10m0s  +30/min  fit over 45m0s`; !strings.Contains(b.String(), want) {
		t.Errorf("summary:\n%s\nwant a line %q", b.String(), want)
	}
}
