package rules

import (
	"fmt"
	"path"
	"reflect"
	"sort"
	"strings"
	"text/template/parse"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/types"
)

// HostView is one host a configuration is checked as: a host the file
// names, a stand-in for the hosts a glob in it matches, or one it names
// nowhere.
type HostView struct {
	Host
	// As says who the view stands for: the name, "hosts matching web-*",
	// or "any other host".
	As string
}

// otherHost stands for a host the configuration names nowhere: no glob
// but "*" matches it, and no name can be it.
const otherHost = "(any other host)"

// HostViews lists the hosts a configuration should be checked as: every
// name its hosts:, vars and rules mention, one host for each glob there,
// and a host named nowhere. A fleet's config repository checks them all
// (picket validate --all-hosts) before the file reaches any host.
func (c *Config) HostViews() []HostView {
	names, globs := map[string]bool{}, map[string]bool{}
	add := func(pattern string) {
		if strings.ContainsAny(pattern, `*?[\`) {
			globs[pattern] = true
		} else if pattern != "" {
			names[pattern] = true
		}
	}
	for _, hs := range c.Hosts {
		add(hs.Match)
	}
	sel := func(s Selector) {
		for _, t := range s.terms {
			if t.glob != "" {
				add(t.glob)
			}
		}
	}
	vars := func(vs []*Var) {
		for _, v := range vs {
			for _, hv := range v.ByHost {
				sel(hv.Hosts)
			}
		}
	}
	vars(c.Vars)
	for _, r := range c.Rules {
		sel(r.Hosts)
		vars(r.Vars)
		for _, cs := range r.Cases {
			sel(cs.Hosts)
		}
	}
	var out []HostView
	for _, n := range sortedKeys(names) {
		out = append(out, HostView{Host: c.Host(n), As: n})
	}
	for _, g := range sortedKeys(globs) {
		if n, ok := globExample(g); ok && !names[n] {
			out = append(out, HostView{Host: c.Host(n), As: "hosts matching " + g})
		}
	}
	return append(out, HostView{Host: c.Host(otherHost), As: "any other host"})
}

// globExample makes a name the glob matches ("web-*" → "web-x"); false for
// globs with classes, which are left to the hosts named.
func globExample(g string) (string, bool) {
	if strings.Contains(g, "[") {
		return "", false
	}
	var b strings.Builder
	for i := 0; i < len(g); i++ {
		switch g[i] {
		case '*', '?':
			b.WriteByte('x')
		case '\\':
			if i+1 < len(g) {
				i++
				b.WriteByte(g[i])
			}
		default:
			b.WriteByte(g[i])
		}
	}
	n := b.String()
	ok, _ := path.Match(g, n)
	return n, ok
}

// CheckHost finds what only a host's own values can get wrong, each at its
// place in the file: a vars.NAME with no value for that host (no default,
// and no selector of it matching), and an expression whose types clash
// with the host's values (count >= vars.limit where this host's limit is
// "twenty"). Load checks the file once for every host at once; this checks
// it as h, and evaluating as h would fail at every run where it reports.
func (c *Config) CheckHost(h HostView) ErrorList {
	var errs ErrorList
	seen := map[string]bool{}
	who := h.As
	if who == h.Name {
		who = "host " + who
	}
	add := func(e Error) {
		e.Msg = who + ": " + e.Msg
		if k := e.Error(); !seen[k] {
			seen[k] = true
			errs = append(errs, e)
		}
	}
	for _, r := range c.Rules {
		if !r.Hosts.Matches(h.Host) {
			continue
		}
		vars := c.VarsFor(r, h.Host)
		missing := func(name string) string {
			if _, ok := vars[name]; ok {
				return ""
			}
			return c.whyNoValue(r, name)
		}
		c.checkExpr(r.Where, vars, missing, add)
		c.checkTemplate(r.Message, vars, missing, add)
		for _, cs := range r.Cases {
			if !cs.Hosts.Matches(h.Host) {
				continue
			}
			c.checkExpr(cs.Match, vars, missing, add)
			c.checkExpr(cs.If, vars, missing, add)
			c.checkTemplate(cs.Message, vars, missing, add)
			c.checkItems(cs.Then, fmt.Sprintf("rule %s case %s", r.Name, cs.Name), missing, add, 0)
		}
	}
	return errs.sorted()
}

// CheckAllHosts is CheckHost for every one of HostViews, the mistakes in
// file order.
func (c *Config) CheckAllHosts() ([]HostView, ErrorList) {
	views := c.HostViews()
	var errs ErrorList
	for _, h := range views {
		errs = append(errs, c.CheckHost(h)...)
	}
	return views, errs.sorted()
}

// whyNoValue says why a rule's var has no value here.
func (c *Config) whyNoValue(r *Rule, name string) string {
	var sels []string
	for _, list := range [][]*Var{c.Vars, r.Vars} {
		for _, v := range list {
			if v.Name != name {
				continue
			}
			for _, hv := range v.ByHost {
				sels = append(sels, hv.Hosts.String())
			}
		}
	}
	if len(sels) == 0 {
		return "it has no default"
	}
	return "no default, and it is set only for " + strings.Join(sels, "; ")
}

func (c *Config) checkExpr(e *Expr, vars map[string]any, missing func(string) string, add func(Error)) {
	if e == nil {
		return
	}
	absent := false
	for _, u := range e.uses {
		if why := missing(u.name); why != "" {
			absent = true
			line, col := exprPos(&e.node, u.offset)
			add(Error{File: e.Pos.File, Line: line, Col: col,
				Msg: fmt.Sprintf("%s: vars.%s has no value on this host (%s)", e.what, u.name, why)})
		}
	}
	if absent {
		return
	}
	// The same environment as at load, but vars typed by this host's
	// values, so the checker sees what a run would compare.
	env := exprEnv(e.tbl, nil)
	typed := types.Map{}
	for k, v := range vars {
		typed[k] = types.TypeOf(v)
	}
	env["vars"] = typed
	if _, err := expr.Compile(e.Src, expr.Env(env), expr.AsBool()); err != nil {
		er := exprErrorAt(e.Pos.File, &e.node, e.what, e.tbl, err)
		var here []string
		for _, u := range e.uses {
			here = append(here, fmt.Sprintf("vars.%s = %#v", u.name, vars[u.name]))
		}
		if len(here) > 0 {
			er.Msg += " (here " + strings.Join(here, ", ") + ")"
		}
		add(er)
	}
}

func (c *Config) checkTemplate(t *Template, vars map[string]any, missing func(string) string, add func(Error)) {
	if t == nil {
		return
	}
	for _, name := range templateVars(t) {
		if why := missing(name); why != "" {
			e := t.Pos
			e.Msg = fmt.Sprintf("%s: {{.vars.%s}} has no value on this host (%s)", t.what, name, why)
			add(e)
		}
	}
}

// checkItems looks for vars in the templates of outputs' and actions'
// settings and macro arguments, and in the macros called (whose own
// position is given, with the rule that calls them).
func (c *Config) checkItems(items []*Item, from string, missing func(string) string, add func(Error), depth int) {
	if depth > 8 {
		return // macro cycles are refused at load; this only bounds the walk
	}
	specVars := func(spec any) []string {
		var names []string
		walkStrings(reflect.ValueOf(spec), func(s *string) {
			if !strings.Contains(*s, "{{") {
				return
			}
			if t, err := parseTemplate(*s); err == nil {
				names = append(names, templateVars(t)...)
			}
		})
		return names
	}
	report := func(pos Error, what string, names []string) {
		for _, name := range names {
			if why := missing(name); why != "" {
				pos.Msg = fmt.Sprintf("%s: {{.vars.%s}} has no value on this host (%s)", what, name, why)
				add(pos)
			}
		}
	}
	for _, it := range items {
		names := specVars(it.Spec)
		for _, a := range sortedKeys(it.Args) {
			names = append(names, templateVars(it.Args[a])...)
		}
		report(it.Pos, from, names)
		if o := c.Outputs[it.Output]; o != nil {
			report(o.Pos, "output "+o.Name+" used by "+from, specVars(o.Spec))
		}
		if m := c.Macros[it.Macro]; m != nil {
			c.checkItems(m.Do, "macro "+m.Name+" called from "+from, missing, add, depth+1)
		}
	}
}

// templateVars lists the NAMEs a template reads as .vars.NAME.
func templateVars(t *Template) []string {
	if t == nil || t.t == nil || t.t.Tree == nil {
		return nil
	}
	var out []string
	var walk func(n parse.Node)
	walk = func(n parse.Node) {
		switch n := n.(type) {
		case *parse.ListNode:
			if n != nil {
				for _, c := range n.Nodes {
					walk(c)
				}
			}
		case *parse.ActionNode:
			walk(n.Pipe)
		case *parse.PipeNode:
			if n != nil {
				for _, c := range n.Cmds {
					walk(c)
				}
			}
		case *parse.CommandNode:
			for _, a := range n.Args {
				walk(a)
			}
		case *parse.FieldNode:
			if len(n.Ident) >= 2 && n.Ident[0] == "vars" {
				out = append(out, n.Ident[1])
			}
		case *parse.ChainNode:
			walk(n.Node)
		case *parse.IfNode:
			walk(n.Pipe)
			walk(n.List)
			walk(n.ElseList)
		case *parse.RangeNode:
			walk(n.Pipe)
			walk(n.List)
			walk(n.ElseList)
		case *parse.WithNode:
			walk(n.Pipe)
			walk(n.List)
			walk(n.ElseList)
		case *parse.TemplateNode:
			walk(n.Pipe)
		}
	}
	walk(t.t.Tree.Root)
	sort.Strings(out)
	return out
}
