package rules

import (
	"errors"
	"fmt"
	"strings"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/vm"
	"go.yaml.in/yaml/v3"
)

// Expr is a compiled condition over a row: expr-lang/expr, type-checked at
// load against the table's fields, so a misspelt field is a load error with
// its position, not a rule that silently never fires.
//
// Besides the row's fields an expression sees vars.NAME (the rule's and the
// config's values as this host sees them), host.name and host.labels,
// prev.FIELD (the same row at the rule's previous evaluation; absent on the
// first), rising.FIELD (how many evaluations in a row FIELD has grown) and
// kernel.FIELD (the kernel table's one row, so a rule over process groups
// can also ask about memory pressure).
type Expr struct {
	Src  string
	Pos  Error
	prog *vm.Program
	// What CheckHost needs to compile it again with one host's values:
	// where it stands (node keeps the scalar's style, for positions inside
	// it), what it is, its table, and where it reads vars.NAME.
	what string
	node yaml.Node
	tbl  *table
	uses []varUse
	// reads are the row fields it reads ("fds"), and the kernel's and the
	// previous row's ("kernel.mem_available", "prev.fds"): a row where one
	// is unknown (nil) is not evaluated (see Engine.Evaluate).
	reads []string
}

// varUse is one vars.NAME in an expression, at a rune offset of its source.
type varUse struct {
	name   string
	offset int
}

func exprEnv(t *table, vars map[string]bool) map[string]any {
	env := map[string]any{}
	for k, v := range t.fields {
		env[k] = v
	}
	vm := map[string]any{}
	for k := range vars {
		vm[k] = nil
	}
	env["vars"] = vm
	env["host"] = map[string]any{"name": "", "labels": []string{}}
	prev := map[string]any{}
	for k, v := range t.fields {
		prev[k] = v
	}
	env["prev"] = prev
	env["rising"] = map[string]int{}
	env["kernel"] = map[string]any(tables()["kernel"].fields)
	return env
}

// expr compiles the expression in n (absent: nil, meaning true).
func (l *loader) expr(d *decoder, n *yaml.Node, what string, t *table, vars map[string]bool) *Expr {
	if n.Kind == 0 {
		return nil
	}
	if n.Kind != yaml.ScalarNode {
		d.errorf(n, "%s: want an expression, got %s", what, kindName(n))
		return nil
	}
	e := &Expr{Src: n.Value, Pos: pos(d, n), what: what, tbl: t,
		node: yaml.Node{Kind: n.Kind, Style: n.Style, Value: n.Value, Line: n.Line, Column: n.Column}}
	prog, err := expr.Compile(n.Value, expr.Env(exprEnv(t, vars)), expr.AsBool())
	if err != nil {
		l.exprError(d, n, what, t, err)
		return nil
	}
	// vars is a map, so expr accepts any key: check them here.
	v := &varCheck{known: vars}
	node := prog.Node()
	ast.Walk(&node, v)
	e.uses = v.uses
	fr := &fieldReads{fields: t.fields}
	ast.Walk(&node, fr)
	e.reads = fr.reads
	for _, bad := range v.unknown {
		line, col := exprPos(n, bad.offset)
		known := sortedKeys(vars)
		*d.errs = append(*d.errs, Error{File: d.file, Line: line, Col: col,
			Msg: fmt.Sprintf("%s: unknown variable vars.%s (defined: %s)", what, bad.name, strings.Join(known, ", "))})
	}
	e.prog = prog
	return e
}

func (l *loader) exprError(d *decoder, n *yaml.Node, what string, t *table, err error) {
	*d.errs = append(*d.errs, exprErrorAt(d.file, n, what, t, err))
}

// exprErrorAt places a compile error of the expression in n in its file.
func exprErrorAt(path string, n *yaml.Node, what string, t *table, err error) Error {
	var fe *file.Error
	line, col := n.Line, n.Column
	msg := err.Error()
	if errors.As(err, &fe) {
		msg = fe.Message
		line, col = exprPos(n, fe.From)
		if strings.HasPrefix(msg, "unknown name ") {
			msg += fmt.Sprintf(" (table %s has: %s; also vars.NAME, host.name, host.labels, prev.FIELD, rising.FIELD, kernel.FIELD)", t.name, t.fieldList())
		}
	}
	return Error{File: path, Line: line, Col: col, Msg: fmt.Sprintf("%s: %s", what, msg)}
}

// exprPos turns a rune offset inside a scalar into a file position: exact
// for plain and quoted one-line scalars, the start line plus the line
// offset for block scalars.
func exprPos(n *yaml.Node, offset int) (int, int) {
	line, col := 0, 0
	for i, r := range []rune(n.Value) {
		if i == offset {
			break
		}
		if r == '\n' {
			line++
			col = 0
		} else {
			col++
		}
	}
	switch n.Style {
	case yaml.LiteralStyle, yaml.FoldedStyle:
		return n.Line + 1 + line, n.Column + 2 + col
	case yaml.DoubleQuotedStyle, yaml.SingleQuotedStyle:
		if line == 0 {
			return n.Line, n.Column + 1 + col
		}
	}
	if line == 0 {
		return n.Line, n.Column + col
	}
	return n.Line + line, col + 1
}

type badVar struct {
	name   string
	offset int
}

type varCheck struct {
	known   map[string]bool
	unknown []badVar
	uses    []varUse
}

func (v *varCheck) Visit(node *ast.Node) {
	m, ok := (*node).(*ast.MemberNode)
	if !ok {
		return
	}
	id, ok := m.Node.(*ast.IdentifierNode)
	if !ok || id.Value != "vars" {
		return
	}
	s, ok := m.Property.(*ast.StringNode)
	if !ok {
		return
	}
	v.uses = append(v.uses, varUse{s.Value, m.Property.Location().From})
	if !v.known[s.Value] {
		v.unknown = append(v.unknown, badVar{s.Value, m.Property.Location().From})
	}
}

// fieldReads collects what an expression reads of the row, the kernel row
// and the previous row.
type fieldReads struct {
	fields Row
	reads  []string
}

func (f *fieldReads) add(name string) {
	for _, r := range f.reads {
		if r == name {
			return
		}
	}
	f.reads = append(f.reads, name)
}

func (f *fieldReads) Visit(node *ast.Node) {
	switch n := (*node).(type) {
	case *ast.IdentifierNode:
		if _, ok := f.fields[n.Value]; ok {
			f.add(n.Value)
		}
	case *ast.MemberNode:
		id, ok := n.Node.(*ast.IdentifierNode)
		if !ok || (id.Value != "kernel" && id.Value != "prev" && id.Value != "rising") {
			return
		}
		if s, ok := n.Property.(*ast.StringNode); ok {
			f.add(id.Value + "." + s.Value)
		} else {
			// prev[name]: any field may be read (prev.go keeps them all).
			f.add(id.Value + ".*")
		}
	}
}

// Eval runs the expression on env. A nil Expr is true.
func (e *Expr) Eval(env map[string]any) (bool, error) {
	if e == nil {
		return true, nil
	}
	out, err := expr.Run(e.prog, env)
	if err != nil {
		return false, fmt.Errorf("%s: %q: %w", e.Pos.Error(), e.Src, err)
	}
	b, _ := out.(bool)
	return b, nil
}
