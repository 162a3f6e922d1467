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
	_, euid, err := ParseStatusUIDs(b)
	return euid, err
}

// ParseStatusUIDs returns the real and the effective uid of the same line.
// The real uid is the one RLIMIT_NPROC counts against: copy_process
// (kernel/fork.c) checks the task's ucounts, which are the real uid's
// (cred->ucounts follows cred->uid, kernel/cred.c).
func ParseStatusUIDs(b []byte) (ruid, euid uint32, err error) {
	for line := 1; len(b) > 0; line++ {
		var l []byte
		l, b = proctext.Line(b)
		if !bytes.HasPrefix(l, []byte("Uid:")) {
			continue
		}
		r, rok := proctext.Dec(proctext.Field(l[4:], 0))
		e, eok := proctext.Dec(proctext.Field(l[4:], 1))
		if !rok || !eok || r > math.MaxUint32 || e > math.MaxUint32 {
			return 0, 0, fmt.Errorf("line %d: bad Uid line %q", line, l)
		}
		return uint32(r), uint32(e), nil
	}
	return 0, 0, errors.New("no Uid line")
}
