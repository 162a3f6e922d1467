package cgroup

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// The interface files' formats (Documentation/admin-guide/cgroup-v2.rst,
// "Interface Files" and "Format"): a single value, "max" for no limit
// (pids.max, memory.max); flat keyed files of "KEY VALUE" lines
// (pids.events, memory.events, memory.stat, cpu.stat); cpu.max's
// "$MAX $PERIOD"; and the pressure files' PSI lines. No library parses
// these from a rooted tree without bringing systemd's D-Bus or a protobuf
// schema along (containerd/cgroups), so they are parsed here, from the
// caller's bytes.

// ErrFormat marks a file whose content is not in the kernel's format.
var ErrFormat = errors.New("unexpected format")

// Unlimited values: v2 prints "max"; v1's memory.limit_in_bytes prints
// PAGE_COUNTER_MAX pages in bytes (9223372036854771712 with 4 KiB pages),
// and the v1 freezer and cpu files print -1.
const unlimitedBytes = 1 << 62

// ParseMax reads a single value that may be "max". unlimited is true for
// "max", -1 and v1's PAGE_COUNTER_MAX.
func ParseMax(b []byte) (v uint64, unlimited bool, err error) {
	b = bytes.TrimSpace(b)
	switch string(b) {
	case "max", "-1":
		return 0, true, nil
	}
	v, err = strconv.ParseUint(string(b), 10, 64)
	if err != nil {
		return 0, false, fmt.Errorf("%w: %q is not a number or max", ErrFormat, b)
	}
	return v, v >= unlimitedBytes, nil
}

// ParseUint reads a single unsigned value (pids.current, memory.current).
func ParseUint(b []byte) (uint64, error) {
	b = bytes.TrimSpace(b)
	v, err := strconv.ParseUint(string(b), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: %q is not a number", ErrFormat, b)
	}
	return v, nil
}

// EachKey calls fn with every "KEY VALUE" line of a flat keyed file whose
// value is an unsigned number; lines of other shapes are skipped (a newer
// kernel may add any). key is a slice of b.
func EachKey(b []byte, fn func(key []byte, v uint64)) {
	for len(b) > 0 {
		var l []byte
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			l, b = b[:i], b[i+1:]
		} else {
			l, b = b, nil
		}
		i := bytes.IndexByte(l, ' ')
		if i <= 0 {
			continue
		}
		if v, ok := dec(bytes.TrimSpace(l[i+1:])); ok {
			fn(l[:i], v)
		}
	}
}

// Keyed returns the values of keys in a flat keyed file (absent keys are
// absent from the map).
func Keyed(b []byte, keys ...string) map[string]uint64 {
	out := make(map[string]uint64, len(keys))
	EachKey(b, func(k []byte, v uint64) {
		for _, want := range keys {
			if string(k) == want {
				out[want] = v
			}
		}
	})
	return out
}

// ParseCPUMax reads cpu.max: "$MAX $PERIOD", MAX being "max" for no
// quota. Both in microseconds.
func ParseCPUMax(b []byte) (quota, period uint64, unlimited bool, err error) {
	f := bytes.Fields(b)
	if len(f) != 2 {
		return 0, 0, false, fmt.Errorf("%w: cpu.max %q: want \"$MAX $PERIOD\"", ErrFormat, b)
	}
	period, err = ParseUint(f[1])
	if err != nil {
		return 0, 0, false, err
	}
	if string(f[0]) == "max" {
		return 0, period, true, nil
	}
	quota, err = ParseUint(f[0])
	return quota, period, false, err
}

// PSI is one pressure file (Documentation/accounting/psi.rst):
//
//	some avg10=0.00 avg60=0.00 avg300=0.00 total=0
//	full avg10=0.00 avg60=0.00 avg300=0.00 total=0
//
// averages in percent, totals in microseconds. A cgroup's cpu.pressure
// has a full line since Linux 5.13.
type PSI struct {
	Some, Full PSILine
	HasFull    bool
}

// PSILine is one line of a pressure file.
type PSILine struct {
	Avg10, Avg60, Avg300 float64
	Total                uint64
}

// ParsePSI reads a pressure file.
func ParsePSI(b []byte) (PSI, error) {
	var p PSI
	seen := false
	for l := range bytes.SplitSeq(b, []byte("\n")) {
		f := bytes.Fields(l)
		if len(f) == 0 {
			continue
		}
		var dst *PSILine
		switch string(f[0]) {
		case "some":
			dst = &p.Some
		case "full":
			dst, p.HasFull = &p.Full, true
		default:
			continue
		}
		seen = true
		for _, kv := range f[1:] {
			k, v, ok := bytes.Cut(kv, []byte("="))
			if !ok {
				return PSI{}, fmt.Errorf("%w: pressure field %q", ErrFormat, kv)
			}
			var err error
			switch string(k) {
			case "avg10":
				dst.Avg10, err = strconv.ParseFloat(string(v), 64)
			case "avg60":
				dst.Avg60, err = strconv.ParseFloat(string(v), 64)
			case "avg300":
				dst.Avg300, err = strconv.ParseFloat(string(v), 64)
			case "total":
				dst.Total, err = strconv.ParseUint(string(v), 10, 64)
			}
			if err != nil {
				return PSI{}, fmt.Errorf("%w: pressure field %q", ErrFormat, kv)
			}
		}
	}
	if !seen {
		return PSI{}, fmt.Errorf("%w: no some/full line in a pressure file", ErrFormat)
	}
	return p, nil
}

// ParseProcs reads cgroup.procs (or tasks): one pid per line.
func ParseProcs(b []byte) ([]int, error) {
	var out []int
	for l := range bytes.SplitSeq(b, []byte("\n")) {
		l = bytes.TrimSpace(l)
		if len(l) == 0 {
			continue
		}
		v, ok := dec(l)
		if !ok || v == 0 || v > 1<<22 {
			return nil, fmt.Errorf("%w: %q in cgroup.procs is not a pid", ErrFormat, l)
		}
		out = append(out, int(v))
	}
	return out, nil
}

// ParseBytes reads a byte count as an administrator writes one: 536870912,
// 512K, 512M, 2G, 1T (powers of 1024, as systemd's MemoryHigh= takes them).
func ParseBytes(s string) (uint64, error) {
	s = strings.TrimSpace(s)
	mult := uint64(1)
	if n := len(s); n > 0 {
		switch s[n-1] {
		case 'K', 'k':
			mult, s = 1<<10, s[:n-1]
		case 'M', 'm':
			mult, s = 1<<20, s[:n-1]
		case 'G', 'g':
			mult, s = 1<<30, s[:n-1]
		case 'T', 't':
			mult, s = 1<<40, s[:n-1]
		}
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil || v > (1<<62)/mult {
		return 0, fmt.Errorf("%w: %q is not a byte count (512M, 2G)", ErrFormat, s)
	}
	return v * mult, nil
}
