// Package term makes text chosen by others safe to print: process names,
// user names, paths and socket addresses are picked by whoever starts a
// process, and a name holding ESC [ ... can repaint an administrator's
// terminal or hide a line.
package term

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Escape returns s unchanged when it is printable UTF-8 without
// backslashes; otherwise control bytes become \n, \t, \x1b, format and
// bidi characters \u202e, invalid UTF-8 \xNN, and a literal backslash \\
// so an escape cannot be forged.
func Escape(s string) string {
	if safe(s) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size <= 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case r == '\\':
			b.WriteString(`\\`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\t':
			b.WriteString(`\t`)
		case r == '\r':
			b.WriteString(`\r`)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\x%02x`, r)
		case !printable(r):
			if r > 0xffff {
				fmt.Fprintf(&b, `\U%08x`, r)
			} else {
				fmt.Fprintf(&b, `\u%04x`, r)
			}
		default:
			b.WriteRune(r)
		}
		i += size
	}
	return b.String()
}

func printable(r rune) bool {
	return unicode.IsGraphic(r) && !unicode.Is(unicode.Bidi_Control, r)
}

func safe(s string) bool {
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c < 0x20 || c == 0x7f || c == '\\' {
				return false
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError || !printable(r) {
			return false
		}
		i += size
	}
	return true
}

// Truncate shortens an escaped string to at most n runes, marking the cut.
func Truncate(s string, n int) string {
	if utf8.RuneCountInString(s) <= n || n < 2 {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

// TruncateLeft shortens s to at most n runes by cutting its start, marked
// with "…": for paths, whose end says most (…/apache2.service).
func TruncateLeft(s string, n int) string {
	r := []rune(s)
	if len(r) <= n || n < 2 {
		return s
	}
	return "…" + string(r[len(r)-n+1:])
}
