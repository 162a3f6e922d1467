// Package term makes text chosen by others safe to print: process names,
// user names, paths and socket addresses are picked by whoever starts a
// process, and a name holding ESC [ ... can repaint an administrator's
// terminal or hide a line.
package term

import (
	"strconv"
	"unicode"
	"unicode/utf8"
)

// Escape returns s unchanged when it is printable UTF-8 without backslashes,
// else Go-quoted without the surrounding quotes: control bytes become \n,
// \x1b, \u202e (bidi overrides included), invalid UTF-8 becomes \xNN, and a
// literal backslash becomes \\ so an escape cannot be forged.
func Escape(s string) string {
	if safe(s) {
		return s
	}
	q := strconv.QuoteToGraphic(s)
	return q[1 : len(q)-1]
}

func safe(s string) bool {
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c < 0x20 || c == 0x7f || c == '\\' || c == '"' {
				return false
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError || !unicode.IsGraphic(r) || unicode.Is(unicode.Bidi_Control, r) {
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
