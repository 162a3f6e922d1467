package term

import (
	"testing"
	"unicode/utf8"
)

func TestEscape(t *testing.T) {
	for in, want := range map[string]string{
		"imapd":              "imapd",
		"$(touch /tmp/x)":    "$(touch /tmp/x)",
		`say "hi"`:           `say "hi"`,
		"\x1b[31mred\x1b[0m": `\x1b[31mred\x1b[0m`,
		"a\nFAKE line":       `a\nFAKE line`,
		`back\slash`:         `back\\slash`,
		"bidi\u202eevil":     `bidi\u202eevil`,
		"bad\xffutf8":        `bad\xffutf8`,
		"bell\a":             `bell\x07`,
		"größe":              "größe",
	} {
		if got := Escape(in); got != want {
			t.Errorf("Escape(%q) = %q, want %q", in, got, want)
		}
	}
}

func FuzzEscape(f *testing.F) {
	f.Add("\x1b]0;title\a\n\\x1b")
	f.Fuzz(func(t *testing.T, s string) {
		out := Escape(s)
		if !utf8.ValidString(out) {
			t.Fatalf("invalid UTF-8 out of %q", s)
		}
		for _, r := range out {
			if r < 0x20 || r == 0x7f || (r >= 0x80 && !printable(r)) {
				t.Fatalf("raw control %U out of %q: %q", r, s, out)
			}
		}
		if safe(s) && out != s {
			t.Fatalf("safe %q changed to %q", s, out)
		}
	})
}
