// Package alarm holds what flows from rules to notifiers and actions: an
// Alarm (one row of one rule's case that matched, or stopped matching) and
// syslog's levels. It imports nothing of picket so every stage can use it.
package alarm

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

// Level is a syslog severity (RFC 5424): lower is worse.
type Level int

// The levels, as PIKT and syslog name them.
const (
	Emergency Level = iota
	Alert
	Critical
	Error
	Warning
	Notice
	Info
	Debug
)

var levelNames = [...]string{"emergency", "alert", "critical", "error", "warning", "notice", "info", "debug"}

func (l Level) String() string {
	if l < 0 || int(l) >= len(levelNames) {
		return fmt.Sprintf("level(%d)", int(l))
	}
	return levelNames[l]
}

// ParseLevel accepts a syslog level name.
func ParseLevel(s string) (Level, error) {
	for i, n := range levelNames {
		if n == s {
			return Level(i), nil
		}
	}
	return 0, fmt.Errorf("unknown level %q (want one of %s)", s, strings.Join(levelNames[:], ", "))
}

// LevelNames lists the valid level names, worst first.
func LevelNames() []string { return append([]string(nil), levelNames[:]...) }

// MarshalText makes levels print by name in JSON.
func (l Level) MarshalText() ([]byte, error) { return []byte(l.String()), nil }

// UnmarshalText parses a level name.
func (l *Level) UnmarshalText(b []byte) error {
	v, err := ParseLevel(string(b))
	if err != nil {
		return err
	}
	*l = v
	return nil
}

// Status says whether an alarm is raised or cleared.
type Status string

const (
	Firing   Status = "firing"
	Resolved Status = "resolved"
)

// Alarm is one row of one rule case: raised when the case matched (after
// its for/after hysteresis), resolved when it stopped matching.
type Alarm struct {
	Host  string `json:"host"`
	Rule  string `json:"rule"`
	Case  string `json:"case"`
	Level Level  `json:"level"`
	// Status is firing or resolved.
	Status Status `json:"status"`
	// Table is the table the rule ran over (process_groups, socket_holders...).
	Table string `json:"table"`
	// Key identifies the row within the rule across evaluations, e.g.
	// "user=alice comm=imapd" or "pid=4242 start=…".
	Key string `json:"key"`
	// Row holds the row's fields. Strings in it were chosen by whoever
	// runs a process: every medium escapes them.
	Row map[string]any `json:"row"`
	// Message is the rendered message template (PIKT's $inline by default:
	// the row as key=value text).
	Message  string            `json:"message"`
	Labels   map[string]string `json:"labels,omitempty"`
	StartsAt time.Time         `json:"starts_at"`
	EndsAt   time.Time         `json:"ends_at,omitzero"`
}

// ID is stable for the same rule, case and row on the same host.
func (a Alarm) ID() string { return a.Host + "/" + a.Rule + "/" + a.Case + "/" + a.Key }

// Inline renders a row as PIKT's $inline: "key=value ..." with keys sorted.
// Values are printed with %v; callers escape for their medium.
func Inline(row map[string]any) string {
	keys := make([]string, 0, len(row))
	for k := range row {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%s=%v", k, row[k])
	}
	return b.String()
}

// Batch is what one rule evaluation hands to a notifier: every alarm of
// that evaluation for that output, so a mail lists every matching row
// (PIKT's `output mail $inline` sends one mail per run, not per row).
type Batch struct {
	Host   string  `json:"host"`
	Rule   string  `json:"rule"`
	Level  Level   `json:"level"`
	Alarms []Alarm `json:"alarms"`
}
