package snapshot

import (
	"bytes"
	"encoding/json"
	"io"
	"strconv"
	"unicode/utf8"
)

// Writing a snapshot as JSON is most of what `picket snapshot --json`
// does after its look, and most of the JSON is the process list: ~240
// bytes a process, 0.75 MB at 3,000 of them. encoding/json walks each
// process by reflection and grows one buffer to the size of the whole
// document (a fresh page faulted in for every 4 KiB of it); the list is
// written here by hand instead, field by field, into a small buffer that
// is flushed as it fills. Everything else, a few KB, is still
// encoding/json's, so the document's shape has one source: the struct
// tags. TestWriteJSONMatchesEncodingJSON holds the two to the same bytes,
// strings with every escape included.

// WriteJSON writes s to w as one line of JSON: byte for byte what
// json.NewEncoder(w).Encode(s) writes.
func (s *Snapshot) WriteJSON(w io.Writer) error {
	jw := jsonOut{w: w, buf: make([]byte, 0, jsonChunk+1024)}
	if err := s.encodeJSON(&jw); err != nil {
		return err
	}
	jw.buf = append(jw.buf, '\n')
	jw.flush()
	return jw.err
}

// AppendJSON appends s to dst as json.Marshal(s) would.
func (s *Snapshot) AppendJSON(dst []byte) ([]byte, error) {
	jw := jsonOut{buf: dst}
	if err := s.encodeJSON(&jw); err != nil {
		return dst, err
	}
	return jw.buf, nil
}

// jsonChunk is how much of the document is held before it is written.
const jsonChunk = 32 << 10

// jsonOut is a buffer that a writer, when there is one, empties every
// jsonChunk bytes; the first error stops the writes.
type jsonOut struct {
	w   io.Writer
	buf []byte
	err error
}

func (o *jsonOut) write(b []byte) {
	o.buf = append(o.buf, b...)
	o.maybeFlush()
}

func (o *jsonOut) maybeFlush() {
	if o.w != nil && len(o.buf) >= jsonChunk {
		o.flush()
	}
}

func (o *jsonOut) flush() {
	if o.w == nil || len(o.buf) == 0 {
		return
	}
	if o.err == nil {
		_, o.err = o.w.Write(o.buf)
	}
	o.buf = o.buf[:0]
}

// listKey is where the process list goes in the rest of the document,
// encoded without it. In encoding/json's output a quote inside a string
// is always escaped, so this can only match the key itself: the first
// match is Processes.List (Selection's "list" comes later and is a
// number).
var listKey = []byte(`"list":null`)

func (s *Snapshot) encodeJSON(o *jsonOut) error {
	list := s.Processes.List
	rest := *s
	rest.Processes.List = nil
	head, err := json.Marshal(&rest)
	if err != nil {
		return err
	}
	i := bytes.Index(head, listKey)
	if list == nil || i < 0 {
		if i < 0 {
			// Not reached while the tags are as they are; if they change,
			// the document is still right, only slower.
			head, err = json.Marshal(s)
			if err != nil {
				return err
			}
		}
		o.write(head)
		return nil
	}
	o.write(head[:i+len(`"list":`)])
	o.buf = append(o.buf, '[')
	for j := range list {
		if j > 0 {
			o.buf = append(o.buf, ',')
		}
		if o.buf, err = appendProcess(o.buf, &list[j]); err != nil {
			return err
		}
		o.maybeFlush()
	}
	o.buf = append(o.buf, ']')
	o.write(head[i+len(listKey):])
	return o.err
}

// appendProcess appends p as encoding/json encodes a Process: the same
// keys in the same order, the same omissions.
func appendProcess(b []byte, p *Process) ([]byte, error) {
	b = append(b, `{"pid":`...)
	b = strconv.AppendInt(b, int64(p.PID), 10)
	b = append(b, `,"ppid":`...)
	b = strconv.AppendInt(b, int64(p.PPID), 10)
	b = append(b, `,"user":`...)
	b = appendJSONString(b, p.User)
	b = append(b, `,"uid":`...)
	b = strconv.AppendUint(b, uint64(p.UID), 10)
	b = append(b, `,"comm":`...)
	b = appendJSONString(b, p.Comm)
	b = append(b, `,"state":`...)
	b = appendJSONString(b, p.State)
	b = append(b, `,"start_time":"`...)
	b, err := p.StartTime.AppendText(b)
	if err != nil {
		// encoding/json fails on the same times (years outside 0–9999),
		// with its own wording.
		_, err = json.Marshal(p.StartTime)
		return b, err
	}
	b = append(b, `","threads":`...)
	b = strconv.AppendInt(b, int64(p.Threads), 10)
	b = append(b, `,"rss_bytes":`...)
	b = strconv.AppendUint(b, p.RSSBytes, 10)
	if p.KernelThread {
		b = append(b, `,"kernel_thread":true`...)
	}
	if p.FDLimit != 0 {
		b = append(b, `,"fd_limit":`...)
		b = strconv.AppendInt(b, p.FDLimit, 10)
	}
	b = append(b, `,"fds":`...)
	b = strconv.AppendInt(b, int64(p.FDs), 10)
	if p.Cgroup != "" {
		b = append(b, `,"cgroup":`...)
		b = appendJSONString(b, p.Cgroup)
	}
	if p.Unit != "" {
		b = append(b, `,"unit":`...)
		b = appendJSONString(b, p.Unit)
	}
	if p.Container != nil {
		c, err := json.Marshal(p.Container)
		if err != nil {
			return b, err
		}
		b = append(b, `,"container":`...)
		b = append(b, c...)
	}
	return append(b, '}'), nil
}

// appendJSONString appends s quoted as encoding/json quotes a string with
// its default HTML escaping (json.Encoder's SetEscapeHTML(true)): <, >
// and & as \u003c, \u003e and \u0026, control bytes as \b \f \n \r \t or
// \u00XX, each invalid UTF-8 byte as \ufffd, and U+2028 and U+2029 as
// \u2028 and \u2029. Names and paths here are whatever a process chose.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i++
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
