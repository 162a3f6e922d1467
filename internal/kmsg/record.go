// Package kmsg reads the kernel's own log from /dev/kmsg and sorts what the
// kernel said into the exhaustions it proves. The kernel announces most
// limits only there, once or rate-limited, and often nowhere else: the
// pids controller's refusal the first time per cgroup, "VFS: file-max
// limit N reached" only past its last peak, an OOM kill's victim only in
// that line.
//
// Records are read from the device itself, one per read(2), as
// Documentation/ABI/testing/dev-kmsg describes: no dmesg, no journald, no
// fork. The catalogue (catalogue.go) maps messages to kinds; a Log keeps,
// per kind, counts and the last few messages in bounded memory.
package kmsg

import (
	"bytes"
	"errors"
	"fmt"
	"time"

	"github.com/picket-guard/picket/internal/proctext"
)

// MaxRecord is the largest record read(2) returns: the kernel's
// CONSOLE_EXT_LOG_MAX (include/linux/printk.h). A shorter buffer makes
// read fail with EINVAL, and the record is skipped.
const MaxRecord = 8192

// LogKern is the kernel's syslog facility (LOG_KERN). devkmsg_write()
// refuses it to userspace: a record written to /dev/kmsg without a
// facility gets LOG_USER, one asking for LOG_KERN keeps LOG_USER.
const LogKern = 0

// ErrMalformed is returned for a record that is not in the
// "PRI,SEQ,TS,FLAGS;MESSAGE" form.
var ErrMalformed = errors.New("malformed kmsg record")

// Record is one record of /dev/kmsg:
//
//	PRI,SEQ,TS,FLAGS[,MORE...];MESSAGE\n
//	 SUBSYSTEM=...\n
//	 DEVICE=...\n
//
// PRI is facility<<3 | level; SEQ the record's sequence number (gaps mean
// records were overwritten); TS microseconds since boot (local_clock());
// FLAGS "-", or "c"/"+" for a continued line on kernels before 4.9. The
// message has every byte outside printable ASCII, and backslash, escaped as
// \xNN by the kernel (msg_add_ext_text() in kernel/printk/printk.c), so one
// record is one line plus its continuation lines.
//
// Text, Subsystem and Device point into the buffer the record was parsed
// from: copy what is kept.
type Record struct {
	Facility int
	Level    int
	Seq      uint64
	TS       time.Duration
	Flags    byte
	// Text is the message, still escaped as the kernel wrote it.
	Text      []byte
	Subsystem []byte
	Device    []byte
}

// FromKernel says whether the kernel itself logged the record: only those
// are the kernel's words.
func (r *Record) FromKernel() bool { return r.Facility == LogKern }

// ParseRecord parses one record as read(2) returns it. A record cut short
// (no final newline) is parsed as far as it goes; the header must be whole.
func ParseRecord(b []byte) (Record, error) {
	var r Record
	semi := bytes.IndexByte(b, ';')
	if semi < 0 {
		return r, fmt.Errorf("%w: no ';' after the header", ErrMalformed)
	}
	hdr := b[:semi]
	var f [4][]byte
	n := 0
	for n < 4 {
		i := bytes.IndexByte(hdr, ',')
		if i < 0 {
			f[n] = hdr
			n++
			break
		}
		f[n], hdr = hdr[:i], hdr[i+1:]
		n++
	}
	// Fields after FLAGS (caller=T123 with CONFIG_PRINTK_CALLER, and
	// whatever later kernels add) are ignored, as the ABI document asks.
	if n < 4 {
		return r, fmt.Errorf("%w: header has %d fields, want 4", ErrMalformed, n)
	}
	pri, ok := proctext.Dec(f[0])
	if !ok || pri > 1<<10 {
		return r, fmt.Errorf("%w: priority %q", ErrMalformed, f[0])
	}
	seq, ok := proctext.Dec(f[1])
	if !ok {
		return r, fmt.Errorf("%w: sequence number %q", ErrMalformed, f[1])
	}
	ts, ok := proctext.Dec(f[2])
	if !ok || ts > uint64(1<<63-1)/uint64(time.Microsecond) {
		return r, fmt.Errorf("%w: timestamp %q", ErrMalformed, f[2])
	}
	if len(f[3]) == 0 {
		return r, fmt.Errorf("%w: no flags", ErrMalformed)
	}
	r.Facility, r.Level = int(pri>>3), int(pri&7)
	r.Seq, r.TS, r.Flags = seq, time.Duration(ts)*time.Microsecond, f[3][0]

	var rest []byte
	r.Text, rest = proctext.Line(b[semi+1:])
	for len(rest) > 0 {
		var line []byte
		line, rest = proctext.Line(rest)
		if len(line) == 0 || line[0] != ' ' {
			continue // not a continuation line: the ABI allows none other
		}
		line = line[1:]
		switch {
		case bytes.HasPrefix(line, []byte("SUBSYSTEM=")):
			r.Subsystem = line[len("SUBSYSTEM="):]
		case bytes.HasPrefix(line, []byte("DEVICE=")):
			r.Device = line[len("DEVICE="):]
		}
	}
	return r, nil
}

// Unescape undoes the kernel's \xNN escaping, giving back the bytes a
// process or user chose (a comm, a cgroup name). A backslash not followed
// by xNN is kept as it is.
func Unescape(b []byte) string {
	if bytes.IndexByte(b, '\\') < 0 {
		return string(b)
	}
	out := make([]byte, 0, len(b))
	for i := 0; i < len(b); i++ {
		if b[i] == '\\' && i+3 < len(b) && b[i+1] == 'x' {
			hi, ok1 := unhex(b[i+2])
			lo, ok2 := unhex(b[i+3])
			if ok1 && ok2 {
				out = append(out, hi<<4|lo)
				i += 3
				continue
			}
		}
		out = append(out, b[i])
	}
	return string(out)
}

func unhex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}
