package rules

import (
	"bytes"
	"fmt"
	"reflect"
	"strings"
	"text/template"

	"go.yaml.in/yaml/v3"
)

// Template is a message or action value with {{.field}} placeholders over
// the row (and vars, host, and a macro's parameters). text/template, not a
// shell: the rendered value is data, handed to an output or an action that
// escapes it or passes it as one argv element.
type Template struct {
	Src string
	t   *template.Template
	// Pos and what place it for CheckHost (set for messages).
	Pos  Error
	what string
}

func parseTemplate(src string) (*Template, error) {
	t, err := template.New("").Option("missingkey=error").Parse(src)
	if err != nil {
		return nil, cleanTemplateError(err)
	}
	return &Template{Src: src, t: t}, nil
}

func cleanTemplateError(err error) error {
	s := err.Error()
	s = strings.TrimPrefix(s, "template: ")
	s = strings.TrimPrefix(s, ":1: ")
	if i := strings.Index(s, "executing \"\" at "); i >= 0 {
		s = s[i+len("executing \"\" at "):]
	}
	return fmt.Errorf("template: %s", s)
}

// Render executes t on data.
func (t *Template) Render(data map[string]any) (string, error) {
	if t == nil {
		return "", nil
	}
	var b bytes.Buffer
	if err := t.t.Execute(&b, data); err != nil {
		return "", cleanTemplateError(err)
	}
	return b.String(), nil
}

// sampleData is what templates are checked against at load: the table's
// fields, vars, host, and extra keys (macro parameters).
func sampleData(t *table, extra, vars map[string]bool) map[string]any {
	data := map[string]any{}
	if t != nil {
		for k, v := range t.fields {
			data[k] = v
		}
	}
	vm := map[string]any{}
	for k := range vars {
		vm[k] = ""
	}
	data["vars"] = vm
	data["host"] = map[string]any{"name": "", "labels": []string{}}
	data["rule"], data["case"], data["level"], data["inline"] = "", "", "", ""
	data["kernel"] = map[string]any(tables()["kernel"].fields)
	if t != nil {
		prev := map[string]any{}
		for k, v := range t.fields {
			prev[k] = v
		}
		data["prev"] = prev
	}
	data["rising"] = map[string]int{}
	for k := range extra {
		data[k] = ""
	}
	return data
}

// template parses a message template; with a table it is test-run against
// the table's fields so an unknown {{.field}} is a load error.
func (l *loader) template(d *decoder, n *yaml.Node, what string, t *table, vars map[string]bool) *Template {
	if n.Kind == 0 {
		return nil
	}
	if n.Kind != yaml.ScalarNode {
		d.errorf(n, "%s: want text, got %s", what, kindName(n))
		return nil
	}
	tp, err := parseTemplate(n.Value)
	if err != nil {
		d.errorf(n, "%s: %v", what, err)
		return nil
	}
	tp.Pos, tp.what = pos(d, n), what
	if t != nil {
		if _, err := tp.Render(sampleData(t, nil, vars)); err != nil {
			d.errorf(n, "%s: %v (table %s has: %s)", what, err, t.name, t.fieldList())
		}
	}
	return tp
}

// checkSpecTemplates parses every template in a spec's strings. Fields are
// not known here (a macro runs in rules over any table), so only syntax is
// checked at load; a missing key fails that one action at run time, named.
func (l *loader) checkSpecTemplates(d *decoder, n *yaml.Node, what string, spec any, extra map[string]bool) {
	walkStrings(reflect.ValueOf(spec), func(s *string) {
		if !strings.Contains(*s, "{{") {
			return
		}
		if _, err := parseTemplate(*s); err != nil {
			d.errorf(n, "%s: %q: %v", what, *s, err)
		}
	})
}

// walkStrings calls f for every exported string (and []string element)
// reachable in v, so specs can be rendered without knowing their types.
func walkStrings(v reflect.Value, f func(*string)) {
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if !v.IsNil() {
			walkStrings(v.Elem(), f)
		}
	case reflect.Struct:
		for i := 0; i < v.NumField(); i++ {
			if v.Type().Field(i).IsExported() {
				walkStrings(v.Field(i), f)
			}
		}
	case reflect.Slice:
		for i := 0; i < v.Len(); i++ {
			walkStrings(v.Index(i), f)
		}
	case reflect.Map:
		// Maps of strings (env of an exec) are rendered by copying.
		if v.Type().Elem().Kind() == reflect.String && !v.IsNil() {
			for _, k := range v.MapKeys() {
				s := v.MapIndex(k).String()
				f(&s)
				v.SetMapIndex(k, reflect.ValueOf(s).Convert(v.Type().Elem()))
			}
		}
	case reflect.String:
		if v.CanSet() {
			s := v.String()
			f(&s)
			v.SetString(s)
		}
	}
}

// renderSpec returns a deep copy of spec with every template rendered.
func renderSpec(spec any, data map[string]any) (any, error) {
	cp := deepCopy(reflect.ValueOf(spec))
	// A spec that must know where its placeholders were (exec: an argument
	// a placeholder begins may not become an option) notes it now; after
	// rendering a value from the row looks like one from the file.
	if m, ok := cp.Interface().(interface{ MarkTemplates() }); ok {
		m.MarkTemplates()
	}
	var firstErr error
	walkStrings(cp, func(s *string) {
		if firstErr != nil || !strings.Contains(*s, "{{") {
			return
		}
		t, err := parseTemplate(*s)
		if err == nil {
			*s, err = t.Render(data)
		}
		if err != nil {
			firstErr = fmt.Errorf("%q: %w", *s, err)
		}
	})
	return cp.Interface(), firstErr
}

func deepCopy(v reflect.Value) reflect.Value {
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			return v
		}
		cp := reflect.New(v.Elem().Type())
		cp.Elem().Set(deepCopy(v.Elem()))
		return cp
	case reflect.Struct:
		cp := reflect.New(v.Type()).Elem()
		cp.Set(v)
		for i := 0; i < v.NumField(); i++ {
			if v.Type().Field(i).IsExported() {
				cp.Field(i).Set(deepCopy(v.Field(i)))
			}
		}
		return cp
	case reflect.Slice:
		if v.IsNil() {
			return v
		}
		cp := reflect.MakeSlice(v.Type(), v.Len(), v.Len())
		for i := 0; i < v.Len(); i++ {
			cp.Index(i).Set(deepCopy(v.Index(i)))
		}
		return cp
	case reflect.Map:
		if v.IsNil() {
			return v
		}
		cp := reflect.MakeMapWithSize(v.Type(), v.Len())
		for _, k := range v.MapKeys() {
			cp.SetMapIndex(k, deepCopy(v.MapIndex(k)))
		}
		return cp
	}
	return v
}
