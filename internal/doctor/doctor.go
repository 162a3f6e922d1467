// Package doctor names the exhaustion a host is in, or heading for, from one
// or two snapshots: each check reads the kernel's own numbers, compares them
// the way the kernel does, and says what to change. A check is one
// file; docs/checks.md says where each rule and threshold comes from.
//
// Checks only read snapshots: nothing here touches the host, forks, or
// writes. The fix lines they suggest are for an administrator to run; they
// never hold a name a process chose (a comm can be "$(rm -rf /)"), only
// numbers and picket's own words.
package doctor

import (
	"fmt"
	"math"
	"sort"
	"strings"
	"time"

	"github.com/picket-guard/picket/internal/snapshot"
)

// Severity is a finding's verdict. The order of the constants is the order
// of badness used to sort findings and pick a report's status: unknown ranks
// above ok and below warning, so "cannot tell" is reported only when nothing
// is known to be wrong (Nagios plugin guidelines).
type Severity int

// The severities, least bad first.
const (
	OK Severity = iota
	Unknown
	Warning
	Critical
)

var severityNames = [...]string{"ok", "unknown", "warning", "critical"}

func (s Severity) String() string {
	if s < 0 || int(s) >= len(severityNames) {
		return fmt.Sprintf("severity(%d)", int(s))
	}
	return severityNames[s]
}

// MarshalText makes severities print by name in JSON.
func (s Severity) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText parses a severity name.
func (s *Severity) UnmarshalText(b []byte) error {
	for i, n := range severityNames {
		if n == string(b) {
			*s = Severity(i)
			return nil
		}
	}
	return fmt.Errorf("unknown severity %q", b)
}

// ExitCode is the Nagios plugin status for the severity: 0 ok, 1 warning,
// 2 critical, 3 unknown.
func (s Severity) ExitCode() int {
	switch s {
	case OK:
		return 0
	case Warning:
		return 1
	case Critical:
		return 2
	}
	return 3
}

// worse returns the worse of two severities.
func worse(a, b Severity) Severity {
	if b > a {
		return b
	}
	return a
}

// Finding is one check's verdict. Title, Explanation and Fix are text for
// people: any name a process or user chose appears in them already escaped
// with term.Escape, and Fix lines hold no such name at all (only pids, uids
// and numbers), so a line can be pasted into a root shell. Evidence holds the
// raw values; renderers escape them.
type Finding struct {
	ID       string   `json:"id"`
	Severity Severity `json:"severity"`
	// Title is the one-line verdict.
	Title    string   `json:"title"`
	Evidence Evidence `json:"evidence"`
	// Explanation says what the kernel does and why this verdict, in plain
	// words. Paragraphs are separated by a blank line.
	Explanation string `json:"explanation"`
	// Fix lists shell commands; lines starting with "#" are advice.
	Fix []string `json:"fix"`
	// Metrics are the numbers the verdict was graded on, with the
	// thresholds applied and the limits they run into: the performance
	// data of `picket doctor --check`. Not in the JSON, whose keys are a
	// contract; the evidence carries the same numbers there.
	Metrics []Metric `json:"-"`
}

// Check is one diagnosis. Run must not modify the snapshots in Input (they
// are shared by every check) and must return a finding whatever it is given:
// missing data is severity Unknown, with the reason in the explanation.
type Check interface {
	ID() string
	Run(in Input) Finding
}

// History answers questions about the past that one snapshot cannot: the
// daemon keeps it. A nil History means "only now is known".
type History interface {
	// PeakOrphans is the highest TCP orphan count seen since the time
	// given; false when nothing was recorded in that window.
	PeakOrphans(since time.Time) (int, bool)
}

// Input is what every check reads.
type Input struct {
	// Prev is the snapshot taken one interval before Cur; nil when only one
	// snapshot was taken (--interval 0): rate checks then say so.
	Prev *snapshot.Snapshot
	Cur  *snapshot.Snapshot
	// Interval is the requested time between the snapshots. Rates divide by
	// the time the snapshots themselves record when they differ.
	Interval   time.Duration
	Thresholds Thresholds
	History    History
}

// elapsed is the time between Prev and Cur as their clocks recorded it, or
// the requested interval; 0 when there is no Prev.
func (in Input) elapsed() time.Duration {
	if in.Prev == nil {
		return 0
	}
	if d := in.Cur.Time.Sub(in.Prev.Time); d > 0 {
		return d
	}
	return in.Interval
}

// Checks returns every check, in a fixed order. The ids are a
// contract: scripts and monitoring key on them.
func Checks() []Check {
	return []Check{
		TCPOrphans{},
		TCPMemory{},
		Beancounters{},
		OtherSockets{},
		ProcessStorm{},
		CgroupLimits{},
		MemoryThrashing{},
		FDExhaustion{},
		Conntrack{},
		SocketLeak{},
		ExhaustionForecast{},
		KernelLog{},
	}
}

// Report is the result of one doctor run: the worst severity and every
// finding, worst first (ties keep the order of Checks).
type Report struct {
	Status   Severity  `json:"status"`
	Findings []Finding `json:"findings"`
	// Host names the snapshot's host for the human header; not in JSON,
	// shape is a contract.
	Host string `json:"-"`
}

// ExitCode is the Nagios status of the whole report: the worst finding wins.
func (r Report) ExitCode() int { return r.Status.ExitCode() }

// Count returns how many findings have the severity.
func (r Report) Count(s Severity) int {
	n := 0
	for _, f := range r.Findings {
		if f.Severity == s {
			n++
		}
	}
	return n
}

// Find returns the finding with the id, if any.
func (r Report) Find(id string) (Finding, bool) {
	for _, f := range r.Findings {
		if f.ID == id {
			return f, true
		}
	}
	return Finding{}, false
}

// Run runs the checks on the input. A zero Thresholds means the defaults. A
// check that panics (a bug, or data no one foresaw) yields an unknown
// finding instead of taking the others down with it: a monitoring plugin
// that crashes says nothing.
func Run(in Input, checks []Check) Report {
	if in.Thresholds == (Thresholds{}) {
		in.Thresholds = DefaultThresholds()
	}
	r := Report{Status: OK, Findings: make([]Finding, 0, len(checks))}
	if in.Cur != nil {
		r.Host = in.Cur.Host
	}
	for _, c := range checks {
		f := runOne(c, in)
		r.Findings = append(r.Findings, f)
		r.Status = worse(r.Status, f.Severity)
	}
	sort.SliceStable(r.Findings, func(i, j int) bool {
		return r.Findings[i].Severity > r.Findings[j].Severity
	})
	return r
}

func runOne(c Check, in Input) (f Finding) {
	defer func() {
		if p := recover(); p != nil {
			f = Finding{
				ID: c.ID(), Severity: Unknown,
				Title:       "the check failed: this is a bug in picket",
				Evidence:    Evidence{{"panic", fmt.Sprint(p)}},
				Explanation: "The check stopped on data it did not expect; the other checks ran. Please report it with `picket snapshot --json`.",
			}
		}
		if f.Evidence == nil {
			f.Evidence = Evidence{}
		}
		if f.Fix == nil {
			f.Fix = []string{}
		}
		f.ID = c.ID()
	}()
	if in.Cur == nil {
		return Finding{Severity: Unknown, Title: "no snapshot to read", Explanation: "Nothing was collected."}
	}
	f = c.Run(in)
	f.ID = c.ID()
	return withKernelLog(f, in)
}

// unknownFinding is the verdict of a check whose files are missing.
func unknownFinding(title, why string, ev Evidence) Finding {
	return Finding{Severity: Unknown, Title: title, Evidence: ev, Explanation: why}
}

// percent is used/limit × 100, rounded to 0.1 (0 when the limit is unknown).
func percent(used, limit float64) float64 {
	if limit <= 0 {
		return 0
	}
	return round1(used * 100 / limit)
}

func round1(x float64) float64 { return math.Round(x*10) / 10 }

// readableCeil rounds n up to two significant digits (86256 → 87000): the
// "round it up a bit to have a nice value" of the Out of socket memory
// story (docs/stories.md), and what an
// administrator will type into a sysctl.
func readableCeil(n int64) int64 {
	if n < 100 {
		return n
	}
	p := int64(1)
	for m := n; m >= 100; m /= 10 {
		p *= 10
	}
	return (n + p - 1) / p * p
}

// limitLevel grades used/limit against the warn and critical percentages
// (a limit of 0 or less is unknown: ok).
func limitLevel(used, limit int64, t Thresholds) Severity {
	if limit <= 0 {
		return OK
	}
	p := share(used, limit)
	switch {
	case p >= t.LimitCritPercent:
		return Critical
	case p >= t.LimitWarnPercent:
		return Warning
	}
	return OK
}

// paragraphs joins explanation paragraphs with a blank line.
func paragraphs(ps ...string) string {
	out := ps[:0:0]
	for _, p := range ps {
		if p != "" {
			out = append(out, p)
		}
	}
	return strings.Join(out, "\n\n")
}
