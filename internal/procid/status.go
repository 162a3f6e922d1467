package procid

import (
	"bytes"
	"errors"
	"fmt"
	"math"

	"github.com/picket-guard/picket/internal/proctext"
)

// ParseStatusUID returns the effective uid from /proc/PID/status's
// "Uid:\treal\teffective\tsaved\tfs" line (task_state in fs/proc/array.c).
// The effective uid is what ps's user column shows and what decides what a
// process may do. Errors name the line.
func ParseStatusUID(b []byte) (uint32, error) {
	for line := 1; len(b) > 0; line++ {
		var l []byte
		l, b = proctext.Line(b)
		if !bytes.HasPrefix(l, []byte("Uid:")) {
			continue
		}
		v, ok := proctext.Dec(proctext.Field(l[4:], 1))
		if !ok || v > math.MaxUint32 {
			return 0, fmt.Errorf("line %d: bad Uid line %q", line, l)
		}
		return uint32(v), nil
	}
	return 0, errors.New("no Uid line")
}
