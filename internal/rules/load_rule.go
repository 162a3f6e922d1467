package rules

import (
	"fmt"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/picket-guard/picket/internal/alarm"
)

func (l *loader) loadRule(d *decoder, rr rawRule) {
	rn := rr.node
	if rn == nil {
		rn = &yaml.Node{}
	}
	r := &Rule{Pos: pos(d, rn), Active: true, Every: rr.Every, Drift: rr.Drift, For: rr.For,
		After: rr.After, Renotify: rr.Renotify, Labels: rr.Labels, Level: alarm.Warning, DryRun: rr.DryRun}
	r.Name, r.Task = rr.Name.Value, rr.Task
	if r.Name == "" {
		d.errorf(rn, "rule: missing name")
		r.Name = fmt.Sprintf("rule-at-line-%d", rn.Line)
	} else if !isRuleName(r.Name) {
		d.errorf(&rr.Name, "rule %q: names are letters, digits, '-', '_' and '.'", r.Name)
	}
	for _, other := range l.cfg.Rules {
		if other.Name == r.Name {
			d.errorf(&rr.Name, "rule %q is defined twice (first at %s)", r.Name, other.Pos.Error())
		}
	}
	what := "rule " + r.Name
	if rr.Level.Kind != 0 {
		lv, err := alarm.ParseLevel(rr.Level.Value)
		if err != nil {
			d.errorf(&rr.Level, "%s: %v", what, err)
		}
		r.Level = lv
	}
	switch rr.Status.Value {
	case "", "active":
	case "inactive":
		r.Active = false
	default:
		d.errorf(&rr.Status, "%s: status %q: want active or inactive", what, rr.Status.Value)
	}
	if r.Every == 0 {
		r.Every = DefaultEvery
	}
	if r.Every < 0 || r.Drift < 0 || r.For < 0 || r.Renotify < 0 || r.After < 0 {
		d.errorf(rn, "%s: every, drift, for, after and renotify cannot be negative", what)
	}
	if r.Drift >= r.Every {
		d.errorf(mapValue(rn, "drift"), "%s: drift %s must be shorter than every %s", what, r.Drift, r.Every)
	}
	r.Table = rr.Table.Value
	t, ok := tables()[r.Table]
	if !ok {
		n := &rr.Table
		if n.Kind == 0 {
			n = rn
		}
		d.errorf(n, "%s: table %q: want one of %s", what, r.Table, strings.Join(TableNames(), ", "))
		return
	}
	r.tbl = t
	r.Hosts = l.selector(d, &rr.Hosts, what+": hosts")
	r.Vars = l.loadVars(d, &rr.Vars, what+": vars")
	l.cfg.Rules = append(l.cfg.Rules, r)
	l.rules = append(l.rules, pendingRule{rule: r, nodes: rr, d: d})

	if len(rr.Cases) > 0 && (rr.If.Kind != 0 || len(rr.Then) > 0) {
		d.errorf(rn, "%s: give either cases or if/then, not both", what)
	}
	if len(rr.Cases) == 0 {
		rr.Cases = []rawCase{{If: rr.If, Then: rr.Then}}
		rr.Cases[0].Name.Value = "default"
	}
	casesNode := mapValue(rn, "cases")
	for i, rc := range rr.Cases {
		c := &Case{Name: rc.Name.Value, Continue: rc.Continue, Level: r.Level, Pos: r.Pos}
		if casesNode != nil && i < len(casesNode.Content) {
			c.Pos = pos(d, casesNode.Content[i])
		}
		if c.Name == "" {
			c.Name = fmt.Sprintf("case%d", i+1)
		}
		for _, o := range r.Cases {
			if o.Name == c.Name {
				d.errorf(&rc.Name, "%s: case %q appears twice", what, c.Name)
			}
		}
		cw := fmt.Sprintf("%s case %s", what, c.Name)
		c.Hosts = l.selector(d, &rc.Hosts, cw+": hosts")
		if rc.Level.Kind != 0 {
			lv, err := alarm.ParseLevel(rc.Level.Value)
			if err != nil {
				d.errorf(&rc.Level, "%s: %v", cw, err)
			}
			c.Level = lv
		}
		for j := range rc.Then {
			if it := l.loadItem(d, &rc.Then[j], cw+": then", nil); it != nil {
				c.Then = append(c.Then, it)
			}
		}
		r.Cases = append(r.Cases, c)
	}
}

// resolve checks what needs every file read: expressions (which may use
// vars from any file), output and macro names.
func (l *loader) resolve() {
	global := map[string]bool{}
	for _, v := range l.cfg.Vars {
		global[v.Name] = true
	}
	for _, p := range l.rules {
		r, rr, d := p.rule, p.nodes, p.d
		vars := map[string]bool{}
		for k := range global {
			vars[k] = true
		}
		for _, v := range r.Vars {
			vars[v.Name] = true
		}
		what := "rule " + r.Name
		r.Where = l.expr(d, &rr.Where, what+": where", r.tbl, vars)
		r.Message = l.template(d, &rr.Message, what+": message", r.tbl, vars)
		if len(rr.Cases) == 0 {
			rr.Cases = []rawCase{{If: rr.If}}
		}
		for i, c := range r.Cases {
			if i >= len(rr.Cases) {
				break
			}
			rc := rr.Cases[i]
			cw := fmt.Sprintf("%s case %s", what, c.Name)
			c.Match = l.expr(d, &rc.Match, cw+": match", r.tbl, vars)
			c.If = l.expr(d, &rc.If, cw+": if", r.tbl, vars)
			c.Message = l.template(d, &rc.Message, cw+": message", r.tbl, vars)
		}
	}
	for _, it := range l.items {
		switch {
		case it.Output != "":
			if _, ok := l.cfg.Outputs[it.Output]; !ok {
				l.errs = append(l.errs, at(&it.Pos, fmt.Sprintf("unknown output %q (defined: %s)", it.Output, strings.Join(sortedKeys(l.cfg.Outputs), ", "))))
			}
		case it.Macro != "":
			m, ok := l.cfg.Macros[it.Macro]
			if !ok {
				l.errs = append(l.errs, at(&it.Pos, fmt.Sprintf("unknown macro %q (defined: %s)", it.Macro, strings.Join(sortedKeys(l.cfg.Macros), ", "))))
				continue
			}
			params := map[string]bool{}
			for _, p := range m.Params {
				params[p] = true
				if _, given := it.Args[p]; !given {
					l.errs = append(l.errs, at(&it.Pos, fmt.Sprintf("call %s: missing argument %q", m.Name, p)))
				}
			}
			for a := range it.Args {
				if !params[a] {
					l.errs = append(l.errs, at(&it.Pos, fmt.Sprintf("call %s: unknown argument %q (parameters: %s)", m.Name, a, strings.Join(m.Params, ", "))))
				}
			}
		}
	}
	// Macros may call macros; refuse cycles so expansion terminates.
	for name := range l.cfg.Macros {
		if cyc := l.macroCycle(name, nil); cyc != "" {
			m := l.cfg.Macros[name]
			l.errs = append(l.errs, at(&m.Pos, "macro call cycle: "+cyc))
			break
		}
	}
}

func (l *loader) macroCycle(name string, stack []string) string {
	for _, s := range stack {
		if s == name {
			return strings.Join(append(stack, name), " → ")
		}
	}
	m, ok := l.cfg.Macros[name]
	if !ok {
		return ""
	}
	for _, it := range m.Do {
		if it.Macro != "" {
			if c := l.macroCycle(it.Macro, append(stack, name)); c != "" {
				return c
			}
		}
	}
	return ""
}

func isRuleName(s string) bool {
	for _, c := range s {
		if !(c == '-' || c == '_' || c == '.' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return s != ""
}
