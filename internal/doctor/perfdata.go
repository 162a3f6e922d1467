package doctor

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Metric is one number a check graded or weighed, with the thresholds it
// applied and the limit the number runs into: what a monitoring plugin
// prints as performance data (Monitoring Plugins Development Guidelines,
// https://www.monitoring-plugins.org/doc/guidelines.html#AEN200), so Icinga,
// Nagios or Zabbix graph it and draw its warning and critical lines.
//
// A check's metrics with thresholds grade exactly as the check does: the
// worst range they fall outside of is the finding's severity (Grade), so a
// threshold overridden for one call (picket doctor --check ID --warning …)
// changes the verdict the way a plugin's -w and -c do.
type Metric struct {
	// Label names the number: ASCII letters, digits, '_', '.', '/' and '-'
	// when picket chooses it; Perfdata quotes it and replaces the two
	// characters the format cannot carry.
	Label string
	Value float64
	// UOM is "", "%", "s", "B" or "c" (a counter that only grows).
	UOM string
	// Warn and Crit are the ranges the check alerts outside of; nil when
	// this number is shown, not graded.
	Warn, Crit *Range
	// Min and Max bound the value: Max is the kernel limit it runs into.
	Min, Max *float64
}

// Range is a threshold in the guidelines' range syntax ([@]start:end, ~ for
// minus infinity, an omitted end for infinity): a value outside
// [Start, End] alerts, or inside it when Inside (the "@" form). Endpoints
// are inclusive.
type Range struct {
	Start, End float64
	Inside     bool
}

// Alert reports whether v falls where the range raises an alert.
func (r Range) Alert(v float64) bool {
	in := v >= r.Start && v <= r.End
	if r.Inside {
		return in
	}
	return !in
}

// String writes the range in its shortest form: "10" (0 to 10), "10:"
// (10 and up), "~:10", "@10:20".
func (r Range) String() string {
	var b strings.Builder
	if r.Inside {
		b.WriteByte('@')
	}
	switch {
	case r.Start == 0 && !math.IsInf(r.End, 1) && !r.Inside:
		b.WriteString(perfNumber(r.End))
		return b.String()
	case math.IsInf(r.Start, -1):
		b.WriteString("~:")
	default:
		b.WriteString(perfNumber(r.Start))
		b.WriteByte(':')
	}
	if !math.IsInf(r.End, 1) {
		b.WriteString(perfNumber(r.End))
	}
	return b.String()
}

// ParseRange reads a threshold in the guidelines' syntax: "10", "10:",
// "~:10", "10:20", "@10:20".
func ParseRange(s string) (Range, error) {
	r := Range{Start: 0, End: math.Inf(1)}
	src := s
	if strings.HasPrefix(s, "@") {
		r.Inside, s = true, s[1:]
	}
	if s == "" {
		return Range{}, fmt.Errorf("range %q: empty", src)
	}
	num := func(t string) (float64, error) {
		v, err := strconv.ParseFloat(t, 64)
		if err != nil || math.IsNaN(v) || math.IsInf(v, 0) || strings.ContainsAny(t, "eEpPxX_") {
			return 0, fmt.Errorf("range %q: %q is not a number", src, t)
		}
		return v, nil
	}
	start, end, colon := strings.Cut(s, ":")
	if !colon {
		end, start = start, ""
	}
	switch start {
	case "":
	case "~":
		r.Start = math.Inf(-1)
	default:
		v, err := num(start)
		if err != nil {
			return Range{}, err
		}
		r.Start = v
	}
	if end != "" {
		v, err := num(end)
		if err != nil {
			return Range{}, err
		}
		r.End = v
	}
	if r.Start > r.End {
		return Range{}, fmt.Errorf("range %q: start %s is above end %s", src, perfNumber(r.Start), perfNumber(r.End))
	}
	return r, nil
}

// above alerts when a value passes x: the kernel's "more than the limit".
func above(x float64) *Range {
	if x >= 0 {
		return &Range{Start: 0, End: x}
	}
	return &Range{Start: math.Inf(-1), End: x}
}

// atLeast alerts when a value reaches x: picket's "at this percentage".
func atLeast(x float64) *Range { return &Range{Start: x, End: math.Inf(1), Inside: true} }

// countAtLeast alerts when a whole count reaches the first integer n for
// which reached(n) holds, written as the plain "n-1" a grapher draws as a
// line. reached must be monotone; the search uses the check's own
// comparison, so the range agrees with the verdict even where floating
// point rounds (80 % of 1000 is 800, 80 % of 65536 is 52428.8).
func countAtLeast(guess float64, reached func(n int64) bool) *Range {
	n := int64(math.Ceil(guess))
	if n < 0 {
		n = 0
	}
	for n > 0 && reached(n-1) {
		n--
	}
	for !reached(n) {
		n++
	}
	return above(float64(n - 1))
}

// limitRanges are the warning and critical ranges of a count graded against
// a kernel limit by limitLevel; nil when the limit is unknown.
func limitRanges(limit int64, t Thresholds) (warn, crit *Range) {
	if limit <= 0 {
		return nil, nil
	}
	at := func(pct float64) *Range {
		return countAtLeast(pct*float64(limit)/100, func(n int64) bool { return share(n, limit) >= pct })
	}
	return at(t.LimitWarnPercent), at(t.LimitCritPercent)
}

// share is used/limit × 100, unrounded: what verdicts compare (percent,
// rounded, is what people read).
func share[T ~int | ~int64 | ~uint64](used, limit T) float64 {
	return float64(used) * 100 / float64(limit)
}

func bound(x float64) *float64 { return &x }

// gauge is a metric bounded by 0 and, when it is known (above 0), the limit.
func gauge(label string, v float64, limit float64) Metric {
	m := Metric{Label: label, Value: v, Min: bound(0)}
	if limit > 0 {
		m.Max = bound(limit)
	}
	return m
}

// percentMetric is a share from 0 to 100.
func percentMetric(label string, v float64) Metric {
	return Metric{Label: label, Value: v, UOM: "%", Min: bound(0), Max: bound(100)}
}

// Grade is the severity the metrics' thresholds give: critical when a value
// is outside its critical range, warning when outside its warning one.
func Grade(ms []Metric) Severity {
	s := OK
	for _, m := range ms {
		switch {
		case m.Crit != nil && m.Crit.Alert(m.Value):
			s = worse(s, Critical)
		case m.Warn != nil && m.Warn.Alert(m.Value):
			s = worse(s, Warning)
		}
	}
	return s
}

// Perfdata writes one metric as 'label'=value[UOM];[warn];[crit];[min];[max],
// dropping trailing empty fields.
func (m Metric) Perfdata() string {
	fields := []string{"", "", "", ""}
	if m.Warn != nil {
		fields[0] = m.Warn.String()
	}
	if m.Crit != nil {
		fields[1] = m.Crit.String()
	}
	if m.Min != nil {
		fields[2] = perfNumber(*m.Min)
	}
	if m.Max != nil {
		fields[3] = perfNumber(*m.Max)
	}
	for len(fields) > 0 && fields[len(fields)-1] == "" {
		fields = fields[:len(fields)-1]
	}
	var b strings.Builder
	b.WriteString(perfLabel(m.Label))
	b.WriteByte('=')
	b.WriteString(perfNumber(m.Value))
	b.WriteString(m.UOM)
	for _, f := range fields {
		b.WriteByte(';')
		b.WriteString(f)
	}
	return b.String()
}

// Perfdata joins the metrics with spaces, the plugin output after "|".
func Perfdata(ms []Metric) string {
	parts := make([]string, len(ms))
	for i, m := range ms {
		parts[i] = m.Perfdata()
	}
	return strings.Join(parts, " ")
}

// perfLabel quotes a label. The guidelines allow any character but '=' and
// the quote itself (Icinga 2 and Graphite choke on both, and on controls);
// a label built from a name someone chose gets those replaced by '_'.
func perfLabel(s string) string {
	var b strings.Builder
	b.WriteByte('\'')
	for _, r := range s {
		if r == '=' || r == '\'' || r < ' ' || r == 0x7f || r == '|' {
			r = '_'
		}
		b.WriteRune(r)
	}
	b.WriteByte('\'')
	return b.String()
}

// perfNumber writes a value in the class [-0-9.] the guidelines require:
// no exponent, no locale, at most three decimals.
func perfNumber(v float64) string {
	if v != math.Trunc(v) {
		v = math.Round(v*1000) / 1000
	}
	s := strconv.FormatFloat(v, 'f', -1, 64)
	if s == "-0" {
		return "0"
	}
	return s
}
