package doctor

import (
	"fmt"
	"io"
	"sort"
	"strings"
)

// Overrides are thresholds given for one call, by metric label: what a
// monitoring plugin's -w and -c are. The empty label means the check's
// first metric, the one its verdict is mostly about.
type Overrides struct {
	Warn, Crit map[string]Range
}

// Empty reports whether nothing is overridden.
func (o Overrides) Empty() bool { return len(o.Warn) == 0 && len(o.Crit) == 0 }

// WithOverrides returns f with the overridden thresholds in its metrics and
// its severity graded by them (an unknown finding stays unknown: a number
// that was not read cannot pass a threshold). When the grade differs from
// the check's own, the title says which numbers decided it. A label the
// finding has no metric for is an error naming those it has.
func WithOverrides(f Finding, o Overrides) (Finding, error) {
	if o.Empty() {
		return f, nil
	}
	ms := append([]Metric(nil), f.Metrics...)
	index := map[string]int{}
	for i, m := range ms {
		index[m.Label] = i
	}
	var labels []string
	for _, m := range ms {
		labels = append(labels, m.Label)
	}
	set := func(which string, rs map[string]Range, put func(*Metric, *Range)) error {
		keys := make([]string, 0, len(rs))
		for k := range rs {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, label := range keys {
			r := rs[label]
			i, ok := index[label]
			if label == "" {
				i, ok = 0, len(ms) > 0
			}
			if !ok {
				if len(labels) == 0 {
					return fmt.Errorf("--%s %s=…: %s reports no metrics here", which, label, f.ID)
				}
				return fmt.Errorf("--%s %s=…: %s has no metric %q (it has: %s)", which, label, f.ID, label, strings.Join(labels, ", "))
			}
			put(&ms[i], &r)
		}
		return nil
	}
	if err := set("warning", o.Warn, func(m *Metric, r *Range) { m.Warn = r }); err != nil {
		return f, err
	}
	if err := set("critical", o.Crit, func(m *Metric, r *Range) { m.Crit = r }); err != nil {
		return f, err
	}
	f.Metrics = ms
	if f.Severity == Unknown {
		return f, nil
	}
	graded := Grade(ms)
	if graded != f.Severity {
		var why []string
		for _, m := range ms {
			switch {
			case m.Crit != nil && m.Crit.Alert(m.Value):
				why = append(why, fmt.Sprintf("%s %s outside critical %s", m.Label, perfNumber(m.Value), m.Crit))
			case m.Warn != nil && m.Warn.Alert(m.Value):
				why = append(why, fmt.Sprintf("%s %s outside warning %s", m.Label, perfNumber(m.Value), m.Warn))
			}
		}
		if len(why) == 0 {
			why = []string{"every metric within the thresholds given"}
		}
		f.Title += " [" + strings.Join(why, "; ") + "]"
		f.Severity = graded
	}
	return f, nil
}

// ServiceName is how a check names itself as a plugin: PICKET TCP-ORPHANS.
func ServiceName(id string) string { return "PICKET " + strings.ToUpper(id) }

// WritePlugin prints f as a monitoring plugin does (Monitoring Plugins
// Development Guidelines): a first line "SERVICE STATUS - text | perfdata",
// then the explanation and the fix as long text. notes (unreadable
// sources, say) come last.
//
// Nagios and Icinga 2 read any later line holding a '|' as more
// performance data, and the first '|' of the first line ends its text; the
// fix lines are shell pipelines and titles may hold a process's name, so
// every '|' in the text becomes '¦' (as Checkmk does with plugin output).
func WritePlugin(w io.Writer, f Finding, notes []string) error {
	text := func(s string) string { return strings.ReplaceAll(s, "|", "¦") }
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s - %s", ServiceName(f.ID), strings.ToUpper(f.Severity.String()), text(oneLine(f.Title)))
	if len(f.Metrics) > 0 {
		b.WriteString(" | ")
		b.WriteString(Perfdata(f.Metrics))
	}
	b.WriteByte('\n')
	if f.Explanation != "" {
		b.WriteString(text(f.Explanation))
		b.WriteByte('\n')
	}
	if len(f.Fix) > 0 {
		b.WriteString("\nFix:\n")
		for _, l := range f.Fix {
			b.WriteString("  " + text(oneLine(l)) + "\n")
		}
	}
	for _, n := range notes {
		b.WriteString(text(oneLine(n)) + "\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// PluginError prints the one line a plugin gives when it could not check.
func PluginError(w io.Writer, id, msg string) error {
	name := "PICKET"
	if id != "" {
		name = ServiceName(id)
	}
	_, err := fmt.Fprintf(w, "%s UNKNOWN - %s\n", name, strings.ReplaceAll(oneLine(msg), "|", "¦"))
	return err
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
