package cgroup

import (
	"errors"
	"reflect"
	"testing"
)

func TestParseMax(t *testing.T) {
	for in, want := range map[string]struct {
		v   uint64
		unl bool
	}{
		"max\n": {0, true}, "512\n": {512, false}, "-1\n": {0, true},
		"9223372036854771712\n": {9223372036854771712, true}, // v1 PAGE_COUNTER_MAX with 4 KiB pages
		"0\n":                   {0, false},
	} {
		v, unl, err := ParseMax([]byte(in))
		if err != nil || v != want.v || unl != want.unl {
			t.Errorf("ParseMax(%q) = %d %v %v", in, v, unl, err)
		}
	}
	if _, _, err := ParseMax([]byte("lots\n")); !errors.Is(err, ErrFormat) {
		t.Errorf("ParseMax(lots): %v", err)
	}
}

func TestKeyed(t *testing.T) {
	b := []byte("low 0\nhigh 12\nmax 1204\noom 3\noom_kill 3\noom_group_kill 0\nweird\nx y z\n")
	got := Keyed(b, "max", "oom_kill", "absent")
	if !reflect.DeepEqual(got, map[string]uint64{"max": 1204, "oom_kill": 3}) {
		t.Errorf("Keyed = %v", got)
	}
}

func TestParseCPUMax(t *testing.T) {
	q, p, unl, err := ParseCPUMax([]byte("50000 100000\n"))
	if err != nil || q != 50000 || p != 100000 || unl {
		t.Errorf("%d %d %v %v", q, p, unl, err)
	}
	if _, p, unl, err := ParseCPUMax([]byte("max 100000\n")); err != nil || !unl || p != 100000 {
		t.Errorf("max: %d %v %v", p, unl, err)
	}
	if _, _, _, err := ParseCPUMax([]byte("max\n")); !errors.Is(err, ErrFormat) {
		t.Errorf("one field: %v", err)
	}
}

func TestParsePSI(t *testing.T) {
	p, err := ParsePSI([]byte("some avg10=41.20 avg60=20.60 avg300=10.30 total=4102311\nfull avg10=18.90 avg60=9.45 avg300=4.72 total=3102311\n"))
	if err != nil || p.Some.Avg10 != 41.2 || p.Full.Total != 3102311 || !p.HasFull {
		t.Errorf("%+v %v", p, err)
	}
	if _, err := ParsePSI([]byte("some avg10=x\n")); !errors.Is(err, ErrFormat) {
		t.Errorf("bad avg: %v", err)
	}
	if _, err := ParsePSI(nil); !errors.Is(err, ErrFormat) {
		t.Errorf("empty: %v", err)
	}
}

func TestParseProcs(t *testing.T) {
	if got, err := ParseProcs([]byte("1\n42\n")); err != nil || !reflect.DeepEqual(got, []int{1, 42}) {
		t.Errorf("%v %v", got, err)
	}
	if _, err := ParseProcs([]byte("1\nx\n")); !errors.Is(err, ErrFormat) {
		t.Errorf("bad pid: %v", err)
	}
}

func FuzzFormats(f *testing.F) {
	f.Add([]byte("some avg10=0.00 avg60=0.00 avg300=0.00 total=0\n"))
	f.Add([]byte("max 100000\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		ParsePSI(b)
		ParseCPUMax(b)
		ParseMax(b)
		ParseProcs(b)
		EachKey(b, func([]byte, uint64) {})
	})
}
