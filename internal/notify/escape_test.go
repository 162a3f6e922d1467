package notify

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/picket-guard/picket/internal/alarm"
)

func TestLogfmtValue(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"imapd", "imapd"},
		{"", `""`},
		{"two words", `"two words"`},
		{"a=b", `"a=b"`},
		{`say "hi"`, `"say \"hi\""`},
		{"evil\nlevel=ok", `"evil\nlevel=ok"`},
		{"\x1b[2J", `"\x1b[2J"`},
		{"a\u202eb", `"a\u202eb"`},
		{"\xff", `"\xff"`},
		{`back\slash`, `"back\\slash"`},
		{"nbsp\u00a0x", "\"nbsp\u00a0x\""},
		{"ümlaut", "ümlaut"},
	} {
		if got := logfmtValue(tc.in); got != tc.want {
			t.Errorf("logfmtValue(%q) = %s, want %s", tc.in, got, tc.want)
		}
	}
}

func TestHeaderSafe(t *testing.T) {
	for _, in := range []string{"evil\r\nBcc: victim@example.com", "a\rb", "a\nb", "\x00\x1b", strings.Repeat("x", 1000)} {
		got := headerSafe(in)
		if strings.ContainsAny(got, "\r\n\x00\x1b") || utf8.RuneCountInString(got) > maxHeaderRunes {
			t.Errorf("headerSafe(%q) = %q", in, got)
		}
	}
	if got := headerSafe("ProcNumChkRed"); got != "ProcNumChkRed" {
		t.Errorf("headerSafe changed a plain name: %q", got)
	}
}

func TestLabelName(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"user", "user"}, {"psi_memory_some10", "psi_memory_some10"}, {"9lives", "_9lives"},
		{"a-b.c", "a_b_c"}, {"__name__", "row__name__"}, {"ü", "_"}, {"", ""},
	} {
		if got := labelName(tc.in); got != tc.want {
			t.Errorf("labelName(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestJSONSafe(t *testing.T) {
	in := map[string]string{"del": "a\x7fb", "c1": "a\u009bb", "bidi": "a\u202eb", "tag": "a\U000e0041b", "nl": "a\nb"}
	b, err := marshalJSON(in)
	if err != nil {
		t.Fatal(err)
	}
	out := jsonSafe(b)
	checkNoRawControl(t, out)
	var back map[string]string
	if err := json.Unmarshal(out, &back); err != nil {
		t.Fatalf("%s: %v", out, err)
	}
	for k, v := range in {
		if back[k] != v {
			t.Errorf("%s: %q came back as %q", k, v, back[k])
		}
	}
}

// checkNoRawControl fails if b holds anything a terminal or a line-based
// reader could act on: a byte below 0x20, DEL, invalid UTF-8, a C1
// control, a line or paragraph separator, a bidi override.
func checkNoRawControl(t *testing.T, b []byte) {
	t.Helper()
	if !utf8.Valid(b) {
		t.Fatalf("invalid UTF-8 in %q", b)
	}
	for _, r := range string(b) {
		if unsafeRune(r) {
			t.Fatalf("raw %U in %q", r, b)
		}
	}
}

// parseLogfmt reads back a line logfmtLine wrote: bare values up to a space,
// quoted values as Go strings.
func parseLogfmt(line string) (map[string]string, error) {
	out := map[string]string{}
	for line != "" {
		eq := strings.IndexByte(line, '=')
		if eq <= 0 {
			return nil, fmt.Errorf("no key at %q", line)
		}
		key := line[:eq]
		if strings.ContainsAny(key, " \"") {
			return nil, fmt.Errorf("bad key %q", key)
		}
		line = line[eq+1:]
		var val string
		if strings.HasPrefix(line, `"`) {
			end := 1
			for ; end < len(line); end++ {
				if line[end] == '\\' {
					end++
					continue
				}
				if line[end] == '"' {
					break
				}
			}
			if end >= len(line) {
				return nil, fmt.Errorf("unterminated quote")
			}
			v, err := strconv.Unquote(line[:end+1])
			if err != nil {
				return nil, fmt.Errorf("unquote %s: %v", line[:end+1], err)
			}
			val, line = v, line[end+1:]
		} else {
			sp := strings.IndexByte(line, ' ')
			if sp < 0 {
				sp = len(line)
			}
			val, line = line[:sp], line[sp:]
		}
		if _, dup := out[key]; dup {
			return nil, fmt.Errorf("key %q twice", key)
		}
		out[key] = val
		if line != "" {
			if line[0] != ' ' {
				return nil, fmt.Errorf("no space before %q", line)
			}
			line = line[1:]
		}
	}
	return out, nil
}

// FuzzLogLine: whatever a process calls itself, its log line is one line,
// with no raw control byte, and reads back to exactly what it was, without
// forging or shadowing a field.
func FuzzLogLine(f *testing.F) {
	for _, s := range []string{"imapd", "$(touch /tmp/x)", "evil\nBcc: victim@example.com\nSubject: pwned",
		"\x1b[2J\x1b[H", "a\u202eb", "\xff\xfe", `x" level=ok host="h`, "", " ", "\u2028", "\u0085", "\x7f", `\n`, "ts=1"} {
		f.Add(s, s)
	}
	f.Fuzz(func(t *testing.T, comm, field string) {
		row := map[string]any{"comm": comm, "user": "alice", "count": 3}
		if field != "" {
			row[field] = comm
		}
		a := procAlarm(row, alarm.Firing)
		a.Message = comm
		line := logfmtLine(a, testNow)
		checkNoRawControl(t, line)
		kv, err := parseLogfmt(string(line))
		if err != nil {
			t.Fatalf("line %q does not parse: %v", line, err)
		}
		if kv["host"] != "moscow" || kv["level"] != "emergency" || kv["status"] != "firing" || kv["user"] != "alice" && field != "user" {
			t.Fatalf("fields forged or shadowed in %q: %v", line, kv)
		}
		if kv["msg"] != comm {
			t.Fatalf("msg %q read back as %q from %q", comm, kv["msg"], line)
		}
		if field != "comm" && logfmtKey(field) != "comm" && kv["comm"] != comm {
			t.Fatalf("comm %q read back as %q from %q", comm, kv["comm"], line)
		}

		js := jsonLogLine(a, testNow)
		checkNoRawControl(t, js)
		var back alarm.Alarm
		if err := json.Unmarshal(js, &back); err != nil {
			t.Fatalf("json line %q: %v", js, err)
		}
		if utf8.ValidString(comm) && back.Message != comm {
			t.Fatalf("json message %q read back as %q", comm, back.Message)
		}
	})
}
