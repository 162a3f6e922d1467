package procid

import (
	"bytes"
	"errors"
	"fmt"
	"math"
)

// ParseStatusUID returns the effective uid from /proc/PID/status's
// "Uid:\treal\teffective\tsaved\tfs" line (task_state in fs/proc/array.c).
// The effective uid is what ps's user column shows and what decides what a
// process may do. Errors name the line.
func ParseStatusUID(b []byte) (uint32, error) {
	line := 0
	for len(b) > 0 {
		line++
		var l []byte
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			l, b = b[:i], b[i+1:]
		} else {
			l, b = b, nil
		}
		if !bytes.HasPrefix(l, []byte("Uid:")) {
			continue
		}
		v, ok := parseDec(tabField(l[4:], 1))
		if !ok || v > math.MaxUint32 {
			return 0, fmt.Errorf("line %d: bad Uid line %q", line, l)
		}
		return uint32(v), nil
	}
	return 0, errors.New("no Uid line")
}

// tabField returns the n-th (0-based) field of l separated by spaces or
// tabs.
func tabField(l []byte, n int) []byte {
	i := 0
	for {
		for i < len(l) && (l[i] == ' ' || l[i] == '\t') {
			i++
		}
		if i == len(l) {
			return nil
		}
		j := i
		for j < len(l) && l[j] != ' ' && l[j] != '\t' {
			j++
		}
		if n == 0 {
			return l[i:j]
		}
		n--
		i = j
	}
}
