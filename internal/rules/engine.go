package rules

import (
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"time"

	"github.com/picket-guard/picket/internal/alarm"
)

// Engine evaluates a configuration as one host, remembering between
// evaluations what hysteresis and prev/rising need. Not safe for
// concurrent use.
type Engine struct {
	cfg   *Config
	host  Host
	opts  EngineOptions
	state map[string]map[string]*caseState // rule -> case/key -> state
	prev  map[string]map[string]Row        // rule -> key -> last row
	rise  map[string]map[string]risings    // rule -> key -> field -> streak
	last  map[string]time.Time             // rule -> last evaluation
	// templatesPrev: a template names prev or rising, so whole rows are
	// kept for the next evaluation (prev.go).
	templatesPrev bool
}

type risings map[string]int

type caseState struct {
	first    time.Time
	count    int
	firing   bool
	notified time.Time
	alarm    alarm.Alarm
	seen     bool // matched in the current evaluation
}

// EngineOptions tune an Engine.
type EngineOptions struct {
	Now func() time.Time
	// IgnoreHysteresis fires on the first match (picket check: one look,
	// no history).
	IgnoreHysteresis bool
	// MaxRows bounds the rows a rule looks at per evaluation (memory is
	// bounded when the box is dying); 0 means 100,000.
	MaxRows int
}

// NewEngine returns an Engine for cfg as host h.
func NewEngine(cfg *Config, h Host, opts EngineOptions) *Engine {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.MaxRows == 0 {
		opts.MaxRows = 100000
	}
	return &Engine{cfg: cfg, host: h, opts: opts, state: map[string]map[string]*caseState{},
		prev: map[string]map[string]Row{}, rise: map[string]map[string]risings{}, last: map[string]time.Time{},
		templatesPrev: templatesReadPrev(cfg)}
}

// Host is who the engine evaluates as.
func (e *Engine) Host() Host { return e.host }

// Rules returns the active rules that apply to this host.
func (e *Engine) Rules() []*Rule {
	var out []*Rule
	for _, r := range e.cfg.Rules {
		if r.Active && r.Hosts.Matches(e.host) {
			out = append(out, r)
		}
	}
	return out
}

// NextRun is when rule r is next due after from: every + a random offset
// up to drift (PIKT's "every five minutes, give or take one").
func NextRun(r *Rule, from time.Time, rnd *rand.Rand) time.Time {
	next := from.Add(r.Every)
	if r.Drift > 0 && rnd != nil {
		next = next.Add(time.Duration(rnd.Int64N(int64(2*r.Drift))) - r.Drift)
	}
	return next
}

// Event is what an evaluation decided for one row of one case: an alarm to
// notify (fired, re-notified or resolved) and the actions to take.
type Event struct {
	Alarm alarm.Alarm
	// Notify is true when outputs should hear of it (firing the first
	// time, re-notify due, or resolved).
	Notify bool
	// Outputs and Actions are rendered and ready; resolved alarms carry
	// outputs only.
	Outputs []OutputRef
	Actions []ActionRef
	// CaseOutputs are the case's outputs even when Outputs is empty
	// because they were told already: a kill's warn: tells them before
	// every kill it takes.
	CaseOutputs []OutputRef
	// Errors are rendering failures of this row's items: reported, the
	// rest still done.
	Errors []string
}

// OutputRef is an output to send to: a named one from the config or an
// inline one (Name is then "RULE/CASE#N").
type OutputRef struct {
	Name string
	Kind string
	Spec any
}

// ActionRef is one action with its templates rendered for the row.
type ActionRef struct {
	Kind  string
	Spec  any
	Macro string // the macro it came from, if any
}

// Evaluate runs rules on in and returns the events, rules in the order
// given, rows in table order. Rows whose case fired before and now do not
// match (or are gone) come back as resolved events.
func (e *Engine) Evaluate(in *Input, rules []*Rule) ([]Event, error) {
	now := e.opts.Now()
	var events []Event
	var errs []error
	for _, r := range rules {
		ev, err := e.evalRule(in, r, now)
		events = append(events, ev...)
		if err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return events, fmt.Errorf("%v", errs)
	}
	return events, nil
}

func (e *Engine) evalRule(in *Input, r *Rule, now time.Time) ([]Event, error) {
	vars := e.cfg.VarsFor(r, e.host)
	hostMap := map[string]any{"name": e.host.Name, "labels": e.host.Labels}
	kernel := kernelRow(in.Snapshot)
	rows := r.tbl.rows(in)
	if len(rows) > e.opts.MaxRows {
		rows = rows[:e.opts.MaxRows]
	}
	prevRows := e.prev[r.Name]
	prevRise := e.rise[r.Name]
	pf := r.prevFields(e.templatesPrev)
	curRows := map[string]Row{}
	curRise := map[string]risings{}
	states := e.state[r.Name]
	if states == nil {
		states = map[string]*caseState{}
		e.state[r.Name] = states
	}
	for _, cs := range states {
		cs.seen = false
	}
	var events []Event
	var firstErr error
	reads := r.reads()
	skipped := map[string]bool{} // rows with an unknown value the rule reads
	for _, row := range rows {
		key := r.tbl.rowKey(row)
		if kept := pf.keep(row); kept != nil {
			curRows[key] = kept
		}
		prev, hadPrev := prevRows[key]
		if unknownIn(reads, row, kernel, prev, hadPrev) {
			// A value the host could not tell (fds of a process picket
			// may not read, PSI on a kernel without it) is not a number: the
			// row is neither matched nor resolved this time.
			skipped[key] = true
			continue
		}
		rise := risings{}
		for f, v := range row {
			if hadPrev && greater(v, prev[f]) {
				rise[f] = prevRise[key][f] + 1
			}
		}
		if len(rise) > 0 {
			kept := risings{}
			for f, n := range rise {
				if pf.keepsRising(f) {
					kept[f] = n
				}
			}
			if len(kept) > 0 {
				curRise[key] = kept
			}
		}
		env := make(map[string]any, len(row)+4)
		for k, v := range row {
			env[k] = v
		}
		env["vars"], env["host"], env["rising"], env["kernel"] = vars, hostMap, map[string]int(rise), map[string]any(kernel)
		if hadPrev {
			env["prev"] = map[string]any(prev)
		} else {
			env["prev"] = map[string]any{}
		}
		if ok, err := r.Where.Eval(env); err != nil || !ok {
			if err != nil && firstErr == nil {
				firstErr = err
			}
			continue
		}
		for _, c := range r.Cases {
			if !c.Hosts.Matches(e.host) {
				continue
			}
			// PIKT's two shapes of a case: `if $proc =~ "imapd" … next fi`
			// decides the row once it matches, fired or not; a bare
			// `if #count >= 20 … next fi` decides it only when it fires.
			matched, err := c.Match.Eval(env)
			if err != nil {
				if firstErr == nil {
					firstErr = err
				}
				break
			}
			if !matched {
				continue
			}
			fires, err := c.If.Eval(env)
			if err != nil && firstErr == nil {
				firstErr = err
			}
			if fires {
				if ev, ok := e.fire(states, r, c, key, row, env, now); ok {
					events = append(events, ev)
				}
			}
			if c.Continue || (c.Match == nil && !fires) {
				continue
			}
			break // PIKT's `next`: this row is decided
		}
	}
	// Resolve what fired before and did not match now.
	keys := make([]string, 0)
	for sk, cs := range states {
		if !cs.seen && !skipped[sk[strings.IndexByte(sk, 0)+1:]] {
			keys = append(keys, sk)
		}
	}
	sort.Strings(keys)
	for _, sk := range keys {
		cs := states[sk]
		if cs.firing {
			a := cs.alarm
			a.Status, a.EndsAt = alarm.Resolved, now
			ev := Event{Alarm: a, Notify: true}
			c := e.caseNamed(r, a.Case)
			env := map[string]any{"vars": vars, "host": hostMap, "kernel": map[string]any(kernel), "prev": map[string]any{}, "rising": map[string]int{}}
			for k, v := range a.Row {
				env[k] = v
			}
			ev.Outputs, _, ev.Errors = e.items(r, c, templateData(env, a.Row, r, c))
			events = append(events, ev)
		}
		delete(states, sk)
	}
	e.prev[r.Name], e.rise[r.Name], e.last[r.Name] = curRows, curRise, now
	return events, firstErr
}

// reads is every field the rule's expressions read.
func (r *Rule) reads() []string {
	var out []string
	add := func(e *Expr) {
		if e != nil {
			out = append(out, e.reads...)
		}
	}
	add(r.Where)
	for _, c := range r.Cases {
		add(c.Match)
		add(c.If)
	}
	return out
}

// unknownIn reports whether one of reads is unknown (nil) in row, the
// kernel row or the previous row.
func unknownIn(reads []string, row, kernel, prev Row, hadPrev bool) bool {
	for _, f := range reads {
		var v any
		var ok bool
		switch {
		case strings.HasPrefix(f, "kernel."):
			v, ok = kernel[f[len("kernel."):]]
		case strings.HasPrefix(f, "prev."):
			if !hadPrev {
				continue
			}
			v, ok = prev[f[len("prev."):]]
		default:
			v, ok = row[f]
		}
		if ok && v == nil {
			return true
		}
	}
	return false
}

func (e *Engine) caseNamed(r *Rule, name string) *Case {
	for _, c := range r.Cases {
		if c.Name == name {
			return c
		}
	}
	return r.Cases[0]
}

// fire records a match of case c for row and decides whether it raises,
// re-notifies or is still waiting out its for/after.
func (e *Engine) fire(states map[string]*caseState, r *Rule, c *Case, key string, row Row, env map[string]any, now time.Time) (Event, bool) {
	sk := c.Name + "\x00" + key
	cs, ok := states[sk]
	if !ok {
		cs = &caseState{first: now}
		states[sk] = cs
	}
	cs.seen = true
	cs.count++
	if !e.opts.IgnoreHysteresis && !cs.firing && (cs.count < r.After || now.Sub(cs.first) < r.For) {
		return Event{}, false
	}
	a := alarm.Alarm{Host: e.host.Name, Rule: r.Name, Case: c.Name, Level: c.Level, Status: alarm.Firing,
		Table: r.Table, Key: key, Row: map[string]any(row), Labels: r.Labels, StartsAt: cs.first}
	data := templateData(env, row, r, c)
	msgT := c.Message
	if msgT == nil {
		msgT = r.Message
	}
	ev := Event{}
	if msgT != nil {
		msg, err := msgT.Render(data)
		if err != nil {
			ev.Errors = append(ev.Errors, fmt.Sprintf("message: %v", err))
			msg = alarm.Inline(row)
		}
		a.Message = msg
	} else {
		a.Message = alarm.Inline(row)
	}
	switch {
	case !cs.firing:
		ev.Notify = true
	case r.Renotify > 0 && now.Sub(cs.notified) >= r.Renotify:
		ev.Notify = true
	}
	if ev.Notify {
		cs.notified = now
	}
	cs.firing = true
	cs.alarm = a
	ev.Alarm = a
	var errs []string
	ev.Outputs, ev.Actions, errs = e.items(r, c, data)
	ev.CaseOutputs = ev.Outputs
	ev.Errors = append(ev.Errors, errs...)
	if !ev.Notify {
		ev.Outputs = nil
	}
	return ev, true
}

// templateData is what messages and action templates see: the expression
// environment (row fields, vars, host, prev, rising, kernel) plus the rule,
// case, level and the row as PIKT's $inline.
func templateData(env map[string]any, row Row, r *Rule, c *Case) map[string]any {
	data := make(map[string]any, len(env)+4)
	for k, v := range env {
		data[k] = v
	}
	data["rule"], data["case"], data["level"] = r.Name, c.Name, c.Level.String()
	data["inline"] = alarm.Inline(row)
	return data
}

// items renders a case's then-list for a row, expanding macro calls.
func (e *Engine) items(r *Rule, c *Case, data map[string]any) ([]OutputRef, []ActionRef, []string) {
	var outs []OutputRef
	var acts []ActionRef
	var errs []string
	seenOut := map[string]bool{}
	var walk func(list []*Item, data map[string]any, macro string, depth int)
	walk = func(list []*Item, data map[string]any, macro string, depth int) {
		for i, it := range list {
			switch {
			case it.Output != "":
				if o := e.cfg.Outputs[it.Output]; o != nil && !seenOut[o.Name] {
					seenOut[o.Name] = true
					outs = append(outs, OutputRef{Name: o.Name, Kind: o.Kind, Spec: o.Spec})
				}
			case it.OutputKind != "":
				spec, err := renderSpec(it.Spec, data)
				if err != nil {
					errs = append(errs, fmt.Sprintf("%s: %v", it.Pos.Error(), err))
					continue
				}
				outs = append(outs, OutputRef{Name: fmt.Sprintf("%s/%s#%d", r.Name, c.Name, i+1), Kind: it.OutputKind, Spec: spec})
			case it.ActionKind != "":
				spec, err := renderSpec(it.Spec, data)
				if err != nil {
					errs = append(errs, fmt.Sprintf("%s: %v", it.Pos.Error(), err))
					continue
				}
				acts = append(acts, ActionRef{Kind: it.ActionKind, Spec: spec, Macro: macro})
			case it.Macro != "":
				m := e.cfg.Macros[it.Macro]
				if m == nil || depth > 8 {
					continue
				}
				inner := make(map[string]any, len(data)+len(it.Args))
				for k, v := range data {
					inner[k] = v
				}
				for name, t := range it.Args {
					v, err := t.Render(data)
					if err != nil {
						errs = append(errs, fmt.Sprintf("%s: args.%s: %v", it.Pos.Error(), name, err))
						continue
					}
					inner[name] = v
				}
				walk(m.Do, inner, m.Name, depth+1)
			}
		}
	}
	walk(c.Then, data, "", 0)
	return outs, acts, errs
}

// greater reports a > b for numbers of the same kind.
func greater(a, b any) bool {
	switch x := a.(type) {
	case int:
		y, ok := b.(int)
		return ok && x > y
	case float64:
		y, ok := b.(float64)
		return ok && x > y
	}
	return false
}
