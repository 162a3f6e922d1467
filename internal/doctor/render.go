package doctor

import (
	"fmt"
	"io"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"unicode"
	"unicode/utf8"

	"github.com/picket-guard/picket/internal/snapshot"
	"github.com/picket-guard/picket/internal/term"
)

// TextOptions shape WriteText.
type TextOptions struct {
	// Color adds ANSI colours to the verdicts; set it only when the output
	// is a terminal (the caller knows, this package does not look).
	Color bool
	// Verbose prints the evidence and explanation of ok findings too;
	// otherwise they get their one-line verdict only.
	Verbose bool
	// Width wraps explanations (default 100).
	Width int
}

var severityColor = map[Severity]string{
	Critical: "\x1b[1;31m",
	Warning:  "\x1b[1;33m",
	Unknown:  "\x1b[1;35m",
	OK:       "\x1b[32m",
}

const colorReset = "\x1b[0m"

// WriteText prints the report for a person: a header with the verdict,
// then each finding worst first with its one-line verdict, evidence,
// explanation and fix lines. Every value taken from the host (names,
// paths) is escaped with term.Escape; picket's own text is stripped of
// control characters as a second line of defence.
func WriteText(w io.Writer, r Report, o TextOptions) error {
	if o.Width <= 0 {
		o.Width = 100
	}
	ew := term.NewPrinter(w)
	label := func(s Severity, pad bool) string {
		t := strings.ToUpper(s.String())
		if pad {
			t = fmt.Sprintf("%-8s", t)
		}
		if o.Color {
			return severityColor[s] + t + colorReset
		}
		return t
	}
	var counts []string
	for _, s := range []Severity{Critical, Warning, Unknown, OK} {
		if n := r.Count(s); n > 0 {
			counts = append(counts, fmt.Sprintf("%d %s", n, s))
		}
	}
	host := ""
	if r.Host != "" {
		host = " on " + term.Escape(r.Host)
	}
	ew.Printf("picket doctor%s: %s (%s)\n", host, label(r.Status, false), strings.Join(counts, ", "))

	for _, f := range r.Findings {
		detail := o.Verbose || f.Severity != OK
		if detail {
			ew.Printf("\n")
		}
		ew.Printf("%s %s: %s\n", label(f.Severity, true), term.Escape(f.ID), clean(f.Title, false))
		if !detail {
			continue
		}
		writeEvidence(ew, f.Evidence)
		if f.Explanation != "" {
			ew.Printf("  why:\n")
			for i, p := range strings.Split(clean(f.Explanation, true), "\n\n") {
				if i > 0 {
					ew.Printf("\n")
				}
				for _, l := range wrap(p, o.Width-4) {
					ew.Printf("    %s\n", l)
				}
			}
		}
		if len(f.Fix) > 0 {
			ew.Printf("  fix:\n")
			for _, l := range f.Fix {
				ew.Printf("    %s\n", clean(l, false))
			}
		}
	}
	return ew.Err()
}

func writeEvidence(ew *term.Printer, ev Evidence) {
	if len(ev) == 0 {
		return
	}
	ew.Printf("  evidence:\n")
	width := 0
	for _, f := range ev {
		if _, ok := f.Value.(Table); !ok && len(f.Key) > width {
			width = len(f.Key)
		}
	}
	for _, f := range ev {
		key := term.Escape(f.Key)
		t, ok := f.Value.(Table)
		if !ok {
			ew.Printf("    %-*s  %s\n", width, key, scalarText(f.Key, f.Value))
			continue
		}
		cells := t.Cells()
		if len(cells) == 0 {
			ew.Printf("    %-*s  (none)\n", width, key)
			continue
		}
		ew.Printf("    %s:\n", key)
		tw := tabwriter.NewWriter(ew, 0, 0, 2, ' ', 0)
		fmt.Fprintf(tw, "      %s\n", strings.Join(t.Columns(), "\t"))
		for _, row := range cells {
			esc := make([]string, len(row))
			for i, c := range row {
				esc[i] = term.Truncate(term.Escape(c), 40)
			}
			fmt.Fprintf(tw, "      %s\n", strings.Join(esc, "\t"))
		}
		tw.Flush()
	}
}

// scalarText prints one evidence value; keys ending in _bytes get a human
// size beside the number.
func scalarText(key string, v any) string {
	if v == nil {
		return "-"
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n := rv.Int()
		if strings.HasSuffix(key, "_bytes") && n >= 0 {
			return fmt.Sprintf("%d (%s)", n, snapshot.HumanBytes(uint64(n)))
		}
		return strconv.FormatInt(n, 10)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		n := rv.Uint()
		if strings.HasSuffix(key, "_bytes") {
			return fmt.Sprintf("%d (%s)", n, snapshot.HumanBytes(n))
		}
		return strconv.FormatUint(n, 10)
	case reflect.Float32, reflect.Float64:
		return strconv.FormatFloat(rv.Float(), 'f', -1, 64)
	case reflect.Bool:
		return strconv.FormatBool(rv.Bool())
	case reflect.String:
		return term.Escape(rv.String())
	case reflect.Slice, reflect.Array:
		parts := make([]string, rv.Len())
		for i := range parts {
			parts[i] = scalarText("", rv.Index(i).Interface())
		}
		return strings.Join(parts, " ")
	case reflect.Map:
		keys := rv.MapKeys()
		sort.Slice(keys, func(i, j int) bool { return fmt.Sprint(keys[i]) < fmt.Sprint(keys[j]) })
		parts := make([]string, len(keys))
		for i, k := range keys {
			parts[i] = term.Escape(fmt.Sprint(k.Interface())) + " " + scalarText("", rv.MapIndex(k).Interface())
		}
		return strings.Join(parts, ", ")
	}
	return term.Escape(fmt.Sprint(v))
}

// clean replaces control and bidi characters in picket's own text with
// their escaped form: names in it were escaped when it was built, so this
// only catches a mistake, and leaves quotes and backslashes readable.
func clean(s string, keepNewlines bool) string {
	ok := true
	for _, r := range s {
		if bad(r, keepNewlines) {
			ok = false
			break
		}
	}
	if ok {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case bad(r, keepNewlines):
			q := strconv.QuoteRuneToASCII(r)
			b.WriteString(q[1 : len(q)-1])
		default:
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

func bad(r rune, keepNewlines bool) bool {
	if r == '\n' && keepNewlines {
		return false
	}
	return r == utf8.RuneError || unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r)
}

// wrap breaks a paragraph into lines of at most width runes at spaces.
func wrap(p string, width int) []string {
	var lines []string
	line, n := "", 0
	for _, word := range strings.Fields(p) {
		wn := utf8.RuneCountInString(word)
		if n > 0 && n+1+wn > width {
			lines = append(lines, line)
			line, n = "", 0
		}
		if n > 0 {
			line += " "
			n++
		}
		line += word
		n += wn
	}
	if n > 0 {
		lines = append(lines, line)
	}
	return lines
}
