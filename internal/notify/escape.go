package notify

// Escaping per medium, in one place. Process names, user names, paths and
// command lines are chosen by whoever starts a process: "evil\nBcc: x" must
// not become a mail header, "a\nlevel=ok" must not forge a log line, and
// ESC [ must not repaint the terminal of whoever tails the log. There is no
// HTML medium (mail is text/plain); a future one escapes with
// html.EscapeString after textSafe.

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/picket-guard/picket/internal/term"
)

// textSafe is for text a human reads (a mail body, an annotation): printable
// UTF-8 is kept, control bytes, bidi overrides and invalid UTF-8 become Go
// escapes (\n, \x1b, \u202e), and a backslash is doubled so an escape
// cannot be forged.
func textSafe(s string) string { return term.Escape(s) }

// maxHeaderRunes bounds what a row value can add to a subject line.
const maxHeaderRunes = 200

// headerSafe is for anything user-derived that reaches a mail header: no CR,
// no LF, no control byte at all (go-mail encodes headers too; this is the
// second lock), and bounded in length.
func headerSafe(s string) string {
	s = term.Escape(s)
	s = strings.Map(func(r rune) rune {
		if r == '\r' || r == '\n' {
			return -1
		}
		return r
	}, s)
	return term.Truncate(s, maxHeaderRunes)
}

// logfmtValue renders one logfmt value: bare when it is printable and holds
// no space, '=' or quote, else quoted with every control byte escaped. The
// output never contains a byte below 0x20, DEL, or a non-graphic rune.
func logfmtValue(s string) string {
	if s == "" {
		return `""`
	}
	if !strings.ContainsAny(s, " =\"\\") && !strings.ContainsFunc(s, func(r rune) bool { return unicode.IsSpace(r) || unsafeRune(r) }) {
		return s
	}
	return quoteValue(s)
}

// quoteValue Go-quotes s (strconv.Unquote reads it back byte for byte):
// control bytes become \n, \x1b, non-graphic and bidi runes \u202e,
// invalid UTF-8 \xNN; printable runes, accents included, stay as they are.
func quoteValue(s string) string {
	var b strings.Builder
	b.Grow(len(s) + 2)
	b.WriteByte('"')
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case r == '"':
			b.WriteString(`\"`)
		case r == '\\':
			b.WriteString(`\\`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\x%02x`, r)
		case unsafeRune(r) && r > 0xffff:
			fmt.Fprintf(&b, `\U%08x`, r)
		case unsafeRune(r):
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	b.WriteByte('"')
	return b.String()
}

// logfmtKey makes a field name safe as a logfmt key: letters, digits and
// _ . - / only.
func logfmtKey(s string) string {
	if s == "" {
		return "_"
	}
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '_', r == '.', r == '-', r == '/':
			return r
		}
		return '_'
	}, s)
}

// formatValue prints a row value for text media (before escaping).
func formatValue(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case json.Number:
		return x.String()
	case float64:
		if x == math.Trunc(x) && math.Abs(x) < 1e15 {
			return strconv.FormatInt(int64(x), 10)
		}
		return strconv.FormatFloat(x, 'g', -1, 64)
	case float32:
		return strconv.FormatFloat(float64(x), 'g', -1, 32)
	case time.Time:
		return x.UTC().Format(time.RFC3339Nano)
	case fmt.Stringer:
		return x.String()
	}
	return fmt.Sprint(v)
}

// isScalar says whether a row value is a string or a number (what becomes
// an Alertmanager label).
func isScalar(v any) bool {
	switch v.(type) {
	case string, json.Number, int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64, float32, float64:
		return true
	}
	return false
}

// jsonSafe finishes a line that encoding/json produced: json escapes bytes
// below 0x20 but leaves DEL, the C1 controls (U+0080–U+009F, which some
// terminals obey as CSI) and bidi overrides raw. Outside strings JSON is
// plain ASCII, so each of these is inside a string and \uXXXX is valid there.
func jsonSafe(b []byte) []byte {
	clean := true
	for i := 0; i < len(b); {
		r, size := utf8.DecodeRune(b[i:])
		if unsafeRune(r) {
			clean = false
			break
		}
		i += size
	}
	if clean {
		return b
	}
	out := make([]byte, 0, len(b)+16)
	for i := 0; i < len(b); {
		r, size := utf8.DecodeRune(b[i:])
		if !unsafeRune(r) {
			out = append(out, b[i:i+size]...)
			i += size
			continue
		}
		if r == utf8.RuneError && size == 1 { // cannot come from encoding/json; be safe anyway
			out = fmt.Appendf(out, `\ufffd`)
		} else if r > 0xffff {
			r1, r2 := utf16.EncodeRune(r)
			out = fmt.Appendf(out, `\u%04x\u%04x`, r1, r2)
		} else {
			out = fmt.Appendf(out, `\u%04x`, r)
		}
		i += size
	}
	return out
}

// unsafeRune is what must never appear raw in a log line.
func unsafeRune(r rune) bool {
	if r < utf8.RuneSelf {
		return r < 0x20 || r == 0x7f
	}
	return r == utf8.RuneError || !unicode.IsGraphic(r) || unicode.Is(unicode.Bidi_Control, r)
}

// labelName makes a row field name a valid Prometheus label name
// ([a-zA-Z_][a-zA-Z0-9_]*); names starting with "__" are reserved for
// Prometheus itself and get a "row" prefix.
func labelName(s string) string {
	if s == "" {
		return ""
	}
	var b strings.Builder
	for i, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r == '_':
			b.WriteRune(r)
		case r >= '0' && r <= '9':
			if i == 0 {
				b.WriteByte('_')
			}
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	n := b.String()
	if strings.HasPrefix(n, "__") {
		n = "row" + n
	}
	return n
}
