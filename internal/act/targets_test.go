package act

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// A command line is journaled cut to maxCmdline bytes, never in the middle
// of a character, and a cut says so.
func TestBoundedCmdline(t *testing.T) {
	for _, c := range []struct {
		name, in, want string
	}{
		{"short", "imapd -f", "imapd -f"},
		{"exactly the bound", strings.Repeat("a", maxCmdline), strings.Repeat("a", maxCmdline)},
		{"one byte over", strings.Repeat("a", maxCmdline+1), strings.Repeat("a", maxCmdline) + "…"},
		// "a" and 127 two-byte é fill 255 bytes: the 256th is half an é.
		{"a two-byte character cut", "a" + strings.Repeat("é", 200), "a" + strings.Repeat("é", 127) + "…"},
		// "a" and 63 four-byte characters fill 253 bytes: three bytes of the next are dropped.
		{"a four-byte character cut", "a" + strings.Repeat("😀", 100), "a" + strings.Repeat("😀", 63) + "…"},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := bounded(c.in, maxCmdline)
			if got != c.want {
				t.Errorf("bounded: %d bytes %q, want %d bytes %q", len(got), got, len(c.want), c.want)
			}
		})
	}
	// A command line that is not UTF-8 at all (argv is any bytes) loses no
	// more than one character's worth at the cut.
	got := bounded(strings.Repeat("\xff", 2*maxCmdline), maxCmdline)
	if n := len(strings.TrimSuffix(got, "…")); n < maxCmdline-(utf8.UTFMax-1) || n > maxCmdline {
		t.Errorf("invalid UTF-8 cut to %d bytes, want %d to %d", n, maxCmdline-(utf8.UTFMax-1), maxCmdline)
	}
}

// Describe names the biggest groups first (ties in the order seen), at
// most three, and counts the rest.
func TestDescribe(t *testing.T) {
	ts := func(spec ...any) []Target {
		var out []Target
		for i := 0; i < len(spec); i += 3 {
			for n := 0; n < spec[i+2].(int); n++ {
				out = append(out, Target{Comm: spec[i].(string), User: spec[i+1].(string)})
			}
		}
		return out
	}
	for _, c := range []struct {
		name string
		in   []Target
		want string
	}{
		{"none", nil, ""},
		{"one", ts("imapd", "nobody", 1), "1 imapd of nobody"},
		{"same command, two users", ts("imapd", "nobody", 2, "imapd", "alice", 3), "3 imapd of alice, 2 imapd of nobody"},
		{"ties keep the order seen", ts("b", "u", 2, "a", "u", 2, "c", "u", 2), "2 b of u, 2 a of u, 2 c of u"},
		{"more than three groups", ts("sh", "bob", 1, "imapd", "nobody", 118, "pop3d", "alice", 2, "x", "y", 3, "z", "w", 1),
			"118 imapd of nobody, 3 x of y, 2 pop3d of alice, and 2 more"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := Describe(c.in); got != c.want {
				t.Errorf("Describe: %q, want %q", got, c.want)
			}
		})
	}
}
