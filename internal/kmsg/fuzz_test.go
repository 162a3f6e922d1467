package kmsg

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/picket-guard/picket/internal/snapshot"
)

func seedRecords(f *testing.F) {
	for _, name := range []string{"catalogue.kmsg", "old-kernels.kmsg", "oom-memcg-6.18.kmsg"} {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		for _, line := range strings.SplitAfter(string(b), "\n") {
			f.Add([]byte(line))
		}
	}
	for _, e := range catalogue {
		f.Add([]byte("6,1,2,-;" + e.Example + "\n"))
	}
}

func FuzzParseRecord(f *testing.F) {
	seedRecords(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseRecord(b)
		if err != nil {
			return
		}
		if r.Level < 0 || r.Level > 7 || r.TS < 0 || len(r.Text) > len(b) {
			t.Fatalf("parsed %+v from %q", r, b)
		}
		// The message stops at the first newline after the header.
		if strings.ContainsRune(string(r.Text), '\n') {
			t.Fatalf("text %q holds a newline", r.Text)
		}
	})
}

func FuzzMatch(f *testing.F) {
	for _, e := range catalogue {
		f.Add([]byte(e.Example))
	}
	f.Add([]byte(`oom-kill:constraint=,task=,pid=1,uid=0`))
	f.Add([]byte(`Out of memory: Killed process 1 (`))
	f.Add([]byte(`INFO: task :1 blocked for more than  seconds`))
	f.Fuzz(func(t *testing.T, text []byte) {
		e, fl, ok := Match(text)
		if !ok {
			if e != nil {
				t.Fatal("entry without a match")
			}
			return
		}
		if fl.PID < 0 || fl.Port < 0 || fl.Port > 65535 || fl.Limit < 0 || fl.Seconds < 0 || (fl.Order != nil && *fl.Order < 0) {
			t.Fatalf("%s: fields %+v from %q", e.Kind, fl, text)
		}
		if len(fl.Comm) > len(text) || len(fl.Cgroup) > len(text) {
			t.Fatalf("%s: a name longer than the message", e.Kind)
		}
	})
}

func FuzzUnescape(f *testing.F) {
	f.Add([]byte(`a\x0ab\x5c\x`))
	f.Add([]byte(`\xzz\x1B`))
	f.Fuzz(func(t *testing.T, b []byte) {
		s := Unescape(b)
		if len(s) > len(b) {
			t.Fatalf("Unescape grew %q to %q", b, s)
		}
		// What the kernel escapes comes back: escaping s as
		// msg_add_ext_text() does and unescaping again is s.
		var esc strings.Builder
		for i := 0; i < len(s); i++ {
			c := s[i]
			if c < ' ' || c >= 127 || c == '\\' {
				esc.WriteString(`\x` + "0123456789abcdef"[c>>4:c>>4+1] + "0123456789abcdef"[c&15:c&15+1])
			} else {
				esc.WriteByte(c)
			}
		}
		if got := Unescape([]byte(esc.String())); got != s {
			t.Fatalf("round trip of %q: %q", s, got)
		}
	})
}

// A stream file of any content reads as records no longer than MaxRecord,
// each counted once as a record, a user's, malformed or too long.
func FuzzStream(f *testing.F) {
	seedRecords(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		path := filepath.Join(t.TempDir(), "kmsg")
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		r, err := Open(path, FromFirst)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		l := NewLog(Options{Boot: boot, Ring: 2})
		n := 0
		err = r.Backlog(context.Background(), func(rec []byte) {
			n++
			if len(rec) > MaxRecord {
				t.Fatalf("record of %d bytes", len(rec))
			}
			l.Add(rec, func(m snapshot.KernelMessage) {
				if len(m.Text) > maxText {
					t.Fatalf("kept %d bytes of text", len(m.Text))
				}
			})
		})
		if err != nil {
			t.Fatal(err)
		}
		l.Flush(nil)
		s := l.Summary(boot)
		if s.Malformed > uint64(n) || s.Records+s.User.Count+s.Malformed > uint64(n) {
			t.Fatalf("%d records read, summary %+v", n, s)
		}
		if _, err := json.Marshal(s); err != nil {
			t.Fatal(err)
		}
		for _, k := range s.Kinds {
			if len(k.Recent) > 2 {
				t.Fatalf("%s: ring of %d", k.Kind, len(k.Recent))
			}
		}
	})
}

// A state file of any content is either refused or restores a Log whose
// summary holds.
func FuzzRestore(f *testing.F) {
	l := NewLog(Options{Boot: boot, BootID: "b"})
	b, err := os.ReadFile(filepath.Join("testdata", "catalogue.kmsg"))
	if err != nil {
		f.Fatal(err)
	}
	for _, line := range strings.SplitAfter(string(b), "\n") {
		l.Add([]byte(line), nil)
	}
	js, _ := json.Marshal(l.State())
	f.Add(js)
	f.Add([]byte(`{"version":1,"boot_id":"b","kinds":{"oom-kill":{"count":3,"minutes":[{"minute":-5,"n":1}],"recent":[{"text":"x"}]}}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var st State
		if json.Unmarshal(b, &st) != nil {
			return
		}
		l := NewLog(Options{Boot: boot, BootID: "b", Ring: 3})
		l.Restore(st)
		s := l.Summary(boot)
		for _, k := range s.Kinds {
			if len(k.Recent) > 3 {
				t.Fatalf("%s: ring of %d after restore", k.Kind, len(k.Recent))
			}
		}
		if len(s.User.Recent) > 3 {
			t.Fatal("user ring unbounded after restore")
		}
	})
}
