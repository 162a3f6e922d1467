package snapshot

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
	"time"
)

// nastyNames are strings a process can give itself or its files: every
// escape encoding/json makes, invalid UTF-8, and the key WriteJSON looks
// for.
var nastyNames = []string{
	"", "imapd", "kworker/0:1", `"list":null`, `x"list":null`, `\"list\":null`,
	"<script>&amp;</script>", "tab\there", "nl\nline", "cr\r", "bs\b", "ff\f",
	"\x00\x01\x1f\x7f", "\xff\xfe", "ok\xc3", "\u2028\u2029", "ümlaut", "日本語", "🦀",
	"a\\b", `q"q`, strings.Repeat("x", 300),
}

// everyField is a Process with every field set, so that a field added to
// Process and not to appendProcess fails TestWriteJSONMatchesEncodingJSON.
func everyField(i int) Process {
	n := nastyNames[i%len(nastyNames)]
	return Process{
		PID: 1000 + i, PPID: i, User: "u" + n, UID: uint32(i), Comm: n, State: "S",
		StartTime: time.Date(2026, 12, 2, 10, 0, i%60, i*1000, time.UTC), Threads: 1 + i,
		RSSBytes: uint64(i) << 12, KernelThread: i%2 == 1, FDLimit: int64(1024 * i), FDs: 2*i - 1,
		Cgroup: "/system.slice/" + n, Unit: n + ".service",
		Container: &Container{Runtime: "docker", ID: n, Pod: "p"},
	}
}

func TestWriteJSONMatchesEncodingJSON(t *testing.T) {
	p := everyField(1)
	v := reflect.ValueOf(p)
	for i := range v.NumField() {
		if v.Field(i).IsZero() {
			t.Fatalf("everyField leaves Process.%s unset", v.Type().Field(i).Name)
		}
	}
	full := &Snapshot{
		Time: time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC), Host: `h<&>"`,
		Processes: Processes{Total: 3, Groups: []Group{{User: `"list":null`, Comm: "c"}}},
		Sockets:   Sockets{TCPStates: map[string]int{"ESTAB": 2}, Processes: []Holder{{PID: 1, Comm: "x"}}},
		Selection: &Selection{List: 2},
		Errors:    []string{"e\x00"},
	}
	for i := range 2 * len(nastyNames) {
		full.Processes.List = append(full.Processes.List, everyField(i))
	}
	// Zero values everywhere, a local zone, nanoseconds.
	full.Processes.List = append(full.Processes.List, Process{},
		Process{StartTime: time.Date(2001, 2, 3, 4, 5, 6, 7, time.FixedZone("x", -3*3600-1800))})
	for _, c := range []struct {
		name string
		s    *Snapshot
	}{
		{"full", full},
		{"no list", &Snapshot{Host: "h"}},
		{"empty list", &Snapshot{Processes: Processes{List: []Process{}}}},
		{"big", bigSnapshot(5000)}, // several chunks
	} {
		t.Run(c.name, func(t *testing.T) {
			var want bytes.Buffer
			if err := json.NewEncoder(&want).Encode(c.s); err != nil {
				t.Fatal(err)
			}
			var got bytes.Buffer
			if err := c.s.WriteJSON(&got); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got.Bytes(), want.Bytes()) {
				t.Fatalf("WriteJSON differs from encoding/json at byte %d:\n got %.300s\nwant %.300s",
					firstDiff(got.Bytes(), want.Bytes()), tail(got.Bytes(), want.Bytes()), tail(want.Bytes(), got.Bytes()))
			}
			m, err := json.Marshal(c.s)
			if err != nil {
				t.Fatal(err)
			}
			a, err := c.s.AppendJSON([]byte("prefix"))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(a, append([]byte("prefix"), m...)) {
				t.Fatalf("AppendJSON differs from json.Marshal at byte %d", firstDiff(a[6:], m))
			}
		})
	}
}

func bigSnapshot(n int) *Snapshot {
	s := &Snapshot{Host: "h"}
	for i := range n {
		s.Processes.List = append(s.Processes.List, everyField(i))
	}
	return s
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

func tail(a, b []byte) []byte { return a[max(0, firstDiff(a, b)-40):] }

// TestWriteJSONErrors: a time encoding/json refuses is refused here too,
// and a writer's error is returned.
func TestWriteJSONErrors(t *testing.T) {
	s := &Snapshot{Processes: Processes{List: []Process{{StartTime: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}}}}
	if _, err := json.Marshal(s); err == nil {
		t.Fatal("encoding/json took year 10000")
	}
	if err := s.WriteJSON(&bytes.Buffer{}); err == nil {
		t.Error("WriteJSON took year 10000")
	}
	if _, err := s.AppendJSON(nil); err == nil {
		t.Error("AppendJSON took year 10000")
	}
	boom := errors.New("disk full")
	if err := bigSnapshot(1000).WriteJSON(failWriter{boom}); !errors.Is(err, boom) {
		t.Errorf("a failing writer: %v", err)
	}
}

type failWriter struct{ err error }

func (f failWriter) Write([]byte) (int, error) { return 0, f.err }

// FuzzAppendJSONString holds the hand-written quoting to encoding/json's.
func FuzzAppendJSONString(f *testing.F) {
	for _, s := range nastyNames {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		if got := appendJSONString(nil, s); !bytes.Equal(got, want) {
			t.Fatalf("%q: got %s, want %s", s, got, want)
		}
	})
}

// BenchmarkWriteJSON compares the two ways at 3,000 processes.
func BenchmarkWriteJSON(b *testing.B) {
	s := bigSnapshot(3000)
	for i := range s.Processes.List {
		if i%100 != 0 {
			s.Processes.List[i].Container = nil // as on a host with a few containers
		}
	}
	b.Run("WriteJSON", func(b *testing.B) {
		for b.Loop() {
			if err := s.WriteJSON(io.Discard); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encoding_json", func(b *testing.B) {
		for b.Loop() {
			if err := json.NewEncoder(io.Discard).Encode(s); err != nil {
				b.Fatal(err)
			}
		}
	})
}
