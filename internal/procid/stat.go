package procid

import (
	"bytes"
	"errors"
	"fmt"
	"math"

	"github.com/picket-guard/picket/internal/proctext"
)

// KernelThreadFlag is PF_KTHREAD (include/linux/sched.h): the bit of
// /proc/PID/stat's flags that marks a kernel thread. A kernel thread is
// never a user's process and never the target of an action.
const KernelThreadFlag = 0x00200000

// Stat is what picket reads of /proc/PID/stat (proc(5); the kernel writes
// it in do_task_stat, fs/proc/array.c). Field numbers are proc(5)'s,
// 1-based; names are procfs's ProcStat ones.
type Stat struct {
	PID  int    // 1 pid
	Comm []byte // 2 comm, without its parentheses; a view into the parsed buffer
	// State is field 3: R, S, D, Z, T, t, X, I...
	State      byte
	PPID       int    // 4 ppid
	PGRP       int    // 5 pgrp
	Session    int    // 6 session
	TTY        int    // 7 tty_nr: the controlling terminal's device, 0 for none
	Flags      uint64 // 9 flags (PF_*)
	NumThreads int    // 20 num_threads
	Starttime  uint64 // 22 starttime: clock ticks (UserHZ) after boot
	RSS        int64  // 24 rss, in pages; the kernel prints it signed
}

// KernelThread says whether the process is a kernel thread (PF_KTHREAD).
func (s *Stat) KernelThread() bool { return s.Flags&KernelThreadFlag != 0 }

// statFields are the fields ParseStat reads, in order, from field 3 on.
var statFields = [...]int{3, 4, 5, 6, 7, 9, 20, 22, 24}

// idNames are the kernel's names of fields 4 to 7.
var idNames = [...]string{"ppid", "pgrp", "session", "tty_nr"}

// ParseStat parses the contents of /proc/PID/stat into st without
// allocating: st.Comm points into b, so it is valid only as long as b is.
// This is the one parser of the file in picket: the collector's walk calls
// it on its reused read buffer, the action runner on each read.
//
// comm is between the first '(' and the last ')': a process names itself
// (prctl PR_SET_NAME, /proc/self/comm, or the file it exec'd), so its comm
// may hold spaces, parentheses and newlines, but no ')' follows it in the
// numeric fields. Errors say which field was malformed ("line 1: ..."), as
// the file is one line.
func ParseStat(b []byte, st *Stat) error {
	l := bytes.IndexByte(b, '(')
	r := bytes.LastIndexByte(b, ')')
	if l < 0 || r < l || r+2 > len(b) {
		return errors.New("line 1: no \"(comm)\"")
	}
	pid, ok := parseInt(bytes.TrimRight(b[:l], " "))
	if !ok {
		return fmt.Errorf("line 1: field 1 (pid) is %q", b[:l])
	}
	st.PID = int(pid)
	st.Comm = b[l+1 : r]
	rest := bytes.TrimRight(b[r+2:], "\n")
	// rest starts at field 3 (state).
	var vals [len(statFields)][]byte
	fi, col := 0, 3
	for i := 0; fi < len(statFields) && i <= len(rest); col++ {
		j := i
		for j < len(rest) && rest[j] != ' ' {
			j++
		}
		if col == statFields[fi] {
			vals[fi] = rest[i:j]
			fi++
		}
		i = j + 1
	}
	if fi < len(statFields) {
		return fmt.Errorf("line 1: %d fields, want at least %d", col-1, statFields[len(statFields)-1])
	}
	if len(vals[0]) != 1 {
		return fmt.Errorf("line 1: field 3 (state) is %q", vals[0])
	}
	st.State = vals[0][0]
	// Fields 4 to 7, signed; no pointers into st, which would make every
	// caller's Stat escape to the heap.
	var ids [4]int
	for k := range ids {
		v, ok := parseInt(vals[1+k])
		if !ok {
			return fmt.Errorf("line 1: field %d (%s) is %q", statFields[1+k], idNames[k], vals[1+k])
		}
		ids[k] = int(v)
	}
	st.PPID, st.PGRP, st.Session, st.TTY = ids[0], ids[1], ids[2], ids[3]
	if st.Flags, ok = proctext.Dec(vals[5]); !ok {
		return fmt.Errorf("line 1: field 9 (flags) is %q", vals[5])
	}
	v, ok := proctext.Dec(vals[6])
	if !ok || v > 1<<31 {
		return fmt.Errorf("line 1: field 20 (num_threads) is %q", vals[6])
	}
	st.NumThreads = int(v)
	if st.Starttime, ok = proctext.Dec(vals[7]); !ok {
		return fmt.Errorf("line 1: field 22 (starttime) is %q", vals[7])
	}
	if st.RSS, ok = parseInt(vals[8]); !ok {
		return fmt.Errorf("line 1: field 24 (rss) is %q", vals[8])
	}
	return nil
}

// parseInt parses a decimal with an optional '-', as the kernel prints a
// signed field (seq_put_decimal_ll).
func parseInt(b []byte) (int64, bool) {
	neg := len(b) > 0 && b[0] == '-'
	if neg {
		b = b[1:]
	}
	v, ok := proctext.Dec(b)
	if v > math.MaxInt64 {
		return 0, false
	}
	if neg {
		return -int64(v), ok
	}
	return int64(v), ok
}
