// Package rules loads picket's configuration (rules, per-host values,
// outputs, macros) and evaluates it against snapshots: PIKT's power
// (ProcNumChkEmergency, ProcNumChkRed, #if moscow … #elseif nantes) in a
// YAML file a Monit user can read. It knows nothing of how outputs are sent
// or actions taken: their specs are decoded through a Registry the caller
// passes in (notify and act), and handed back to it rendered.
package rules

import (
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/picket-guard/picket/internal/alarm"
)

// Registry makes the specs of outputs and actions: fresh pointers to
// structs with yaml tags, decoded strictly. A spec with a Validate() error
// method is validated at load.
type Registry struct {
	Output func(kind string) (any, bool)
	Action func(kind string) (any, bool)
	// Protect makes the spec of the top-level protect: key (the processes
	// no action may touch); nil refuses the key.
	Protect func() any
	// OutputKinds and ActionKinds name the kinds, for error messages.
	OutputKinds []string
	ActionKinds []string
}

// Config is a loaded, validated configuration.
type Config struct {
	Files   []string // the main file first, then includes
	Hosts   []HostSpec
	Vars    []*Var // in file order
	Outputs map[string]*Output
	Macros  map[string]*Macro
	Rules   []*Rule
	// Protect is the decoded protect: key (Registry.Protect's spec), nil
	// when no file gives one; ProtectPos is where it was given.
	Protect    any
	ProtectPos Error
}

// HostSpec gives labels to hosts whose name matches Match (a name or glob).
type HostSpec struct {
	Match  string
	Labels []string
}

// Var is a named value used in conditions as vars.NAME, the same everywhere
// or chosen by host: PIKT's `#if moscow 20 #elseif nantes 10 #endif`.
type Var struct {
	Name    string
	Default any // nil: no default (a host that matches no selector has no value)
	ByHost  []HostValue
	Pos     Error
}

// HostValue is a value for the hosts a selector matches.
type HostValue struct {
	Hosts Selector
	Value any
}

// Output is a named notifier: `ops: {mail: {...}}`.
type Output struct {
	Name string
	Kind string
	Spec any
	Pos  Error
}

// Macro is a named, parameterised list of outputs and actions (PIKT's
// archive_mail_file(U, M), kill_user_proc(P, U, C, T, M)).
type Macro struct {
	Name   string
	Params []string
	Do     []*Item
	Pos    Error
}

// Rule runs over a table on a schedule; each row goes down the cases, the
// first matching case decides (unless it says continue).
type Rule struct {
	Name     string
	Task     string // what the rule is for, in words (PIKT's `task`)
	Level    alarm.Level
	Active   bool
	Every    time.Duration
	Drift    time.Duration
	Table    string
	Hosts    Selector
	Where    *Expr
	Vars     []*Var
	Message  *Template
	For      time.Duration
	After    int
	Renotify time.Duration
	Labels   map[string]string
	// DryRun makes every action of this rule a dry run.
	DryRun bool
	Cases  []*Case
	Pos    Error
	tbl    *table
}

// Case is one branch: PIKT's `if $proc =~ "imapd" … next fi`.
type Case struct {
	Name  string
	Hosts Selector
	// Match picks the case: a row that matches stops here (unless
	// Continue), whether or not If holds — PIKT's `next` after
	// `if $proc =~ "imapd"`. Without Match, a row stops here only when If
	// fires.
	Match *Expr
	// If fires the case's outputs and actions.
	If       *Expr
	Then     []*Item
	Continue bool
	Level    alarm.Level
	Message  *Template
	Pos      Error
}

// Item is one entry of a `then:` or macro `do:` list: an output by name, an
// inline output, an action, or a macro call.
type Item struct {
	Output     string // a named output
	OutputKind string // inline output: its kind and spec
	ActionKind string
	Spec       any // output or action spec; string fields may hold templates
	Macro      string
	Args       map[string]*Template
	Pos        Error
}

// DefaultEvery is a rule's schedule when it gives none.
const DefaultEvery = time.Minute

// Load reads a configuration file and its includes, checks everything it
// can without running (unknown keys, fields, outputs, macros, levels,
// expressions, templates) and returns every mistake found as an ErrorList
// with FILE:LINE:COL positions.
func Load(file string, reg Registry) (*Config, error) {
	l := &loader{reg: reg, cfg: newConfig(), seen: map[string]bool{}}
	l.loadFile(file, nil)
	return l.finish()
}

// LoadBytes is Load for a configuration held in memory (the embedded
// default); includes are resolved against the working directory.
func LoadBytes(name string, data []byte, reg Registry) (*Config, error) {
	l := &loader{reg: reg, cfg: newConfig(), seen: map[string]bool{}}
	l.loadData(name, data, nil)
	return l.finish()
}

func newConfig() *Config {
	return &Config{Outputs: map[string]*Output{}, Macros: map[string]*Macro{}}
}

type loader struct {
	reg  Registry
	cfg  *Config
	errs ErrorList
	seen map[string]bool
	// pending cross-references, checked once every file is read.
	items []*Item
	rules []pendingRule
}

type pendingRule struct {
	rule  *Rule
	nodes rawRule
	d     *decoder
}

func (l *loader) finish() (*Config, error) {
	l.resolve()
	if len(l.errs) > 0 {
		return nil, l.errs.sorted()
	}
	return l.cfg, nil
}

func (l *loader) loadFile(file string, from *Error) {
	abs, err := filepath.Abs(file)
	if err == nil && l.seen[abs] {
		l.errs = append(l.errs, at(from, fmt.Sprintf("include cycle: %s is already included", file)))
		return
	}
	l.seen[abs] = true
	data, err := os.ReadFile(file)
	if err != nil {
		if from != nil {
			l.errs = append(l.errs, at(from, fmt.Sprintf("include: %v", err)))
		} else {
			l.errs = append(l.errs, Error{File: file, Msg: err.Error()})
		}
		return
	}
	l.loadData(file, data, from)
}

func at(pos *Error, msg string) Error {
	e := *pos
	e.Msg = msg
	return e
}

// raw is the file's top level as written.
type raw struct {
	Include []yaml.Node         `yaml:"include"`
	Hosts   yaml.Node           `yaml:"hosts"`
	Vars    yaml.Node           `yaml:"vars"`
	Outputs yaml.Node           `yaml:"outputs"`
	Macros  map[string]rawMacro `yaml:"macros"`
	Rules   []rawRule           `yaml:"rules"`
	Protect yaml.Node           `yaml:"protect"`
}

type rawMacro struct {
	Params []string    `yaml:"params"`
	Do     []yaml.Node `yaml:"do"`
}

type rawRule struct {
	Name     yaml.Node         `yaml:"name"`
	Task     string            `yaml:"task"`
	Level    yaml.Node         `yaml:"level"`
	Status   yaml.Node         `yaml:"status"`
	Every    time.Duration     `yaml:"every"`
	Drift    time.Duration     `yaml:"drift"`
	Table    yaml.Node         `yaml:"table"`
	Hosts    yaml.Node         `yaml:"hosts"`
	Where    yaml.Node         `yaml:"where"`
	Vars     yaml.Node         `yaml:"vars"`
	Message  yaml.Node         `yaml:"message"`
	For      time.Duration     `yaml:"for"`
	After    int               `yaml:"after"`
	Renotify time.Duration     `yaml:"renotify"`
	Labels   map[string]string `yaml:"labels"`
	DryRun   bool              `yaml:"dry_run"`
	Cases    []rawCase         `yaml:"cases"`
	// A rule without cases may give one case's fields directly.
	If   yaml.Node   `yaml:"if"`
	Then []yaml.Node `yaml:"then"`
	node *yaml.Node
}

type rawCase struct {
	Name     yaml.Node   `yaml:"name"`
	Hosts    yaml.Node   `yaml:"hosts"`
	Match    yaml.Node   `yaml:"match"`
	If       yaml.Node   `yaml:"if"`
	Then     []yaml.Node `yaml:"then"`
	Continue bool        `yaml:"continue"`
	Level    yaml.Node   `yaml:"level"`
	Message  yaml.Node   `yaml:"message"`
}

func (l *loader) loadData(file string, data []byte, from *Error) {
	l.cfg.Files = append(l.cfg.Files, file)
	d := &decoder{file: file, errs: &l.errs}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		l.errs = append(l.errs, yamlSyntaxError(file, err))
		return
	}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		return // empty file
	}
	top := doc.Content[0]
	var r raw
	if !d.decode(top, &r, "config") {
		return
	}
	// Rules need their own nodes for positions.
	if rn := mapValue(top, "rules"); rn != nil && rn.Kind == yaml.SequenceNode {
		for i := range r.Rules {
			if i < len(rn.Content) {
				r.Rules[i].node = rn.Content[i]
			}
		}
	}
	for _, inc := range r.Include {
		pos := pos(d, &inc)
		p := inc.Value
		if !filepath.IsAbs(p) {
			p = filepath.Join(filepath.Dir(file), p)
		}
		l.loadFile(p, &pos)
	}
	l.loadHosts(d, &r.Hosts)
	l.cfg.Vars = append(l.cfg.Vars, l.loadVars(d, &r.Vars, "vars")...)
	l.loadOutputs(d, &r.Outputs)
	l.loadProtect(d, top, &r.Protect)
	if mn := mapValue(top, "macros"); mn != nil {
		for i := 0; i+1 < len(mn.Content); i += 2 {
			name := mn.Content[i].Value
			m := r.Macros[name]
			l.loadMacro(d, name, mn.Content[i], m)
		}
	}
	for i := range r.Rules {
		l.loadRule(d, r.Rules[i])
	}
}

func yamlSyntaxError(file string, err error) Error {
	// yaml.v3 says "yaml: line N: message".
	msg := err.Error()
	e := Error{File: file, Msg: msg}
	var line int
	if n, _ := fmt.Sscanf(msg, "yaml: line %d:", &line); n == 1 {
		e.Line, e.Col = line, 1
		e.Msg = strings.TrimSpace(msg[strings.Index(msg, ":")+1:])
		e.Msg = strings.TrimSpace(e.Msg[strings.Index(e.Msg, ":")+1:])
	}
	return e
}

func pos(d *decoder, n *yaml.Node) Error { return Error{File: d.file, Line: n.Line, Col: n.Column} }

func mapValue(n *yaml.Node, key string) *yaml.Node {
	if n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}

func (l *loader) loadHosts(d *decoder, n *yaml.Node) {
	if n.Kind == 0 {
		return
	}
	if n.Kind != yaml.MappingNode {
		d.errorf(n, "hosts: want a mapping of host name (or glob) to {labels: [...]}")
		return
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if _, err := path.Match(k.Value, ""); err != nil {
			d.errorf(k, "hosts: bad glob %q: %v", k.Value, err)
		}
		var spec struct {
			Labels []string `yaml:"labels"`
		}
		if d.decode(v, &spec, "hosts."+k.Value) {
			l.cfg.Hosts = append(l.cfg.Hosts, HostSpec{Match: k.Value, Labels: spec.Labels})
		}
	}
}

// loadVars reads `vars:`: NAME: value, or NAME: {SELECTOR: value, …, default: value}.
func (l *loader) loadVars(d *decoder, n *yaml.Node, what string) []*Var {
	if n.Kind == 0 {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		d.errorf(n, "%s: want a mapping of name to value", what)
		return nil
	}
	var out []*Var
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if !isIdent(k.Value) {
			d.errorf(k, "%s: %q is not a usable name (letters, digits and _, not starting with a digit)", what, k.Value)
			continue
		}
		vr := &Var{Name: k.Value, Pos: pos(d, k)}
		switch v.Kind {
		case yaml.ScalarNode:
			vr.Default = scalarValue(v)
		case yaml.MappingNode:
			for j := 0; j+1 < len(v.Content); j += 2 {
				sk, sv := v.Content[j], v.Content[j+1]
				if sv.Kind != yaml.ScalarNode {
					d.errorf(sv, "%s.%s.%s: want a single value", what, k.Value, sk.Value)
					continue
				}
				if sk.Value == "default" || sk.Value == "*" {
					vr.Default = scalarValue(sv)
					continue
				}
				sel, err := parseSelector([]string{sk.Value})
				if err != nil {
					d.errorf(sk, "%s.%s: %v", what, k.Value, err)
					continue
				}
				vr.ByHost = append(vr.ByHost, HostValue{Hosts: sel, Value: scalarValue(sv)})
			}
		default:
			d.errorf(v, "%s.%s: want a value or a mapping of host to value", what, k.Value)
			continue
		}
		out = append(out, vr)
	}
	return out
}

// scalarValue decodes a scalar as YAML types it: int, float, bool or string.
func scalarValue(n *yaml.Node) any {
	var v any
	if err := n.Decode(&v); err != nil {
		return n.Value
	}
	return v
}

func isIdent(s string) bool {
	if s == "" {
		return false
	}
	for i, c := range s {
		if c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || i > 0 && c >= '0' && c <= '9' {
			continue
		}
		return false
	}
	return true
}

func (l *loader) loadOutputs(d *decoder, n *yaml.Node) {
	if n.Kind == 0 {
		return
	}
	if n.Kind != yaml.MappingNode {
		d.errorf(n, "outputs: want a mapping of name to {KIND: {...}}")
		return
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if prev, dup := l.cfg.Outputs[k.Value]; dup {
			d.errorf(k, "outputs: %q is defined twice (first at %s)", k.Value, prev.Pos.Error())
			continue
		}
		kind, spec, ok := l.decodeKind(d, v, "outputs."+k.Value, l.reg.Output, l.reg.OutputKinds)
		if ok {
			l.cfg.Outputs[k.Value] = &Output{Name: k.Value, Kind: kind, Spec: spec, Pos: pos(d, k)}
		}
	}
}

// loadProtect decodes protect: once for the whole configuration: a second
// file giving it too would leave the reader unsure which list holds, so it
// is refused at its position rather than merged.
func (l *loader) loadProtect(d *decoder, top, n *yaml.Node) {
	if n.Kind == 0 {
		return
	}
	kn := n
	for i := 0; i+1 < len(top.Content); i += 2 {
		if top.Content[i].Value == "protect" {
			kn = top.Content[i]
		}
	}
	if l.cfg.Protect != nil {
		d.errorf(kn, "protect: given twice (first at %s); keep one list", l.cfg.ProtectPos.Error())
		return
	}
	if l.reg.Protect == nil {
		d.errorf(kn, "protect: not available here")
		return
	}
	spec := l.reg.Protect()
	if n.Kind == yaml.ScalarNode && n.Value == "" || n.Tag == "!!null" {
		n = &yaml.Node{Kind: yaml.MappingNode, Line: n.Line, Column: n.Column}
	}
	if !d.decode(n, spec, "protect") {
		return
	}
	if val, ok := spec.(interface{ Validate() error }); ok {
		if err := val.Validate(); err != nil {
			d.invalid(n, "protect", err)
			return
		}
	}
	l.cfg.Protect, l.cfg.ProtectPos = spec, pos(d, kn)
}

// decodeKind decodes {KIND: {...}} through a registry function.
func (l *loader) decodeKind(d *decoder, n *yaml.Node, what string, mk func(string) (any, bool), kinds []string) (string, any, bool) {
	if n.Kind != yaml.MappingNode || len(n.Content) != 2 {
		d.errorf(n, "%s: want exactly one of %s with its settings", what, strings.Join(kinds, ", "))
		return "", nil, false
	}
	k, v := n.Content[0], n.Content[1]
	if mk == nil {
		d.errorf(k, "%s: %q is not available here", what, k.Value)
		return "", nil, false
	}
	spec, ok := mk(k.Value)
	if !ok {
		d.errorf(k, "%s: unknown kind %q (want one of %s)", what, k.Value, strings.Join(kinds, ", "))
		return "", nil, false
	}
	if v.Kind == yaml.ScalarNode && v.Value == "" || v.Tag == "!!null" {
		v = &yaml.Node{Kind: yaml.MappingNode, Line: v.Line, Column: v.Column}
	}
	if !d.decode(v, spec, what+"."+k.Value) {
		return "", nil, false
	}
	if val, ok := spec.(interface{ Validate() error }); ok {
		if err := val.Validate(); err != nil {
			d.invalid(v, what+"."+k.Value, err)
			return "", nil, false
		}
	}
	return k.Value, spec, true
}

func (l *loader) loadMacro(d *decoder, name string, kn *yaml.Node, m rawMacro) {
	if prev, dup := l.cfg.Macros[name]; dup {
		d.errorf(kn, "macros: %q is defined twice (first at %s)", name, prev.Pos.Error())
		return
	}
	mac := &Macro{Name: name, Params: m.Params, Pos: pos(d, kn)}
	for _, p := range m.Params {
		if !isIdent(p) {
			d.errorf(kn, "macros.%s: parameter %q is not a usable name", name, p)
		}
	}
	extra := map[string]bool{}
	for _, p := range m.Params {
		extra[p] = true
	}
	for i := range m.Do {
		if it := l.loadItem(d, &m.Do[i], "macros."+name+".do", extra); it != nil {
			mac.Do = append(mac.Do, it)
		}
	}
	l.cfg.Macros[name] = mac
}

// loadItem reads one entry of a then/do list. extra names template keys
// besides the row's fields (a macro's parameters).
func (l *loader) loadItem(d *decoder, n *yaml.Node, what string, extra map[string]bool) *Item {
	it := &Item{Pos: pos(d, n)}
	switch {
	case n.Kind == yaml.ScalarNode:
		it.Output = n.Value
	case n.Kind == yaml.MappingNode && mapValue(n, "call") != nil:
		var c struct {
			Call string               `yaml:"call"`
			Args map[string]yaml.Node `yaml:"args"`
		}
		if !d.decode(n, &c, what) {
			return nil
		}
		it.Macro = c.Call
		it.Args = map[string]*Template{}
		argsNode := mapValue(n, "args")
		for k := range c.Args {
			an := mapValue(argsNode, k)
			t, err := parseTemplate(an.Value)
			if err != nil {
				d.errorf(an, "%s: args.%s: %v", what, k, err)
				continue
			}
			it.Args[k] = t
		}
	case n.Kind == yaml.MappingNode && len(n.Content) == 2:
		kind := n.Content[0].Value
		if _, isOut := callOK(l.reg.Output, kind); isOut {
			k, spec, ok := l.decodeKind(d, n, what, l.reg.Output, l.reg.OutputKinds)
			if !ok {
				return nil
			}
			it.OutputKind, it.Spec = k, spec
		} else {
			k, spec, ok := l.decodeKind(d, n, what, l.reg.Action, append(append([]string{}, l.reg.ActionKinds...), "call"))
			if !ok {
				return nil
			}
			it.ActionKind, it.Spec = k, spec
		}
		l.checkSpecTemplates(d, n.Content[1], what+"."+kind, it.Spec, extra)
	default:
		d.errorf(n, "%s: want an output name, {call: MACRO, args: {...}} or one action {KIND: {...}}", what)
		return nil
	}
	l.items = append(l.items, it)
	return it
}

func callOK(f func(string) (any, bool), kind string) (any, bool) {
	if f == nil {
		return nil, false
	}
	return f(kind)
}
