package rules

import (
	"fmt"
	"math"
	"reflect"
	"sort"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// decoder decodes YAML nodes into structs strictly: a key that names no
// field is an error at the key's position. yaml.v3's own KnownFields works
// on a whole Decoder only, not on the nodes picket decodes piece by piece
// (it needs each piece's position for its own errors), so the check walks
// the node and the struct type together here.
type decoder struct {
	file string
	errs *ErrorList
	// seen memoises aliased nodes per type: without it a document of
	// aliases of aliases ("billion laughs") costs exponential time here
	// even though yaml.v3's own decoder refuses it.
	seen map[aliasKey]bool
}

type aliasKey struct {
	n *yaml.Node
	t reflect.Type
}

func (d *decoder) errorf(n *yaml.Node, format string, a ...any) {
	e := Error{File: d.file, Msg: fmt.Sprintf(format, a...)}
	if n != nil {
		e.Line, e.Col = n.Line, n.Column
	}
	*d.errs = append(*d.errs, e)
}

// invalid records a spec's Validate error, one line per mistake when the
// spec joined several (errors.Join): an admin reads them as a list, and
// FILE:LINE:COL tools take one per line.
func (d *decoder) invalid(n *yaml.Node, what string, err error) {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range j.Unwrap() {
			d.invalid(n, what, e)
		}
		return
	}
	d.errorf(n, "%s: %v", what, err)
}

// decode checks n against v's type, then decodes it. Unknown keys are
// recorded and skipped so the rest is still checked (an admin wants every
// mistake in one run); it reports false when n cannot be decoded at all.
func (d *decoder) decode(n *yaml.Node, v any, what string) bool {
	before := len(*d.errs)
	d.check(n, reflect.TypeOf(v).Elem(), what)
	if err := n.Decode(v); err != nil {
		// check has already placed a value of the wrong type at its own
		// line and column; yaml.v3's error for it names only the line, so
		// repeating it here would add a second, vaguer report.
		if len(*d.errs) == before {
			d.errorf(n, "%s: %s", what, cleanYAMLError(err))
		}
		return false
	}
	return true
}

var durationType = reflect.TypeOf(time.Duration(0))

// check walks node and type together looking for unknown keys.
func (d *decoder) check(n *yaml.Node, t reflect.Type, what string) {
	if n.Kind == yaml.AliasNode {
		n = n.Alias
		k := aliasKey{n, t}
		if d.seen[k] {
			return
		}
		if d.seen == nil {
			d.seen = map[aliasKey]bool{}
		}
		d.seen[k] = true
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if reflect.PointerTo(t).Implements(reflect.TypeOf((*yaml.Unmarshaler)(nil)).Elem()) {
		return // decodes itself and reports its own errors
	}
	switch t.Kind() {
	case reflect.Struct:
		if t == reflect.TypeOf(time.Time{}) || t == reflect.TypeOf(yaml.Node{}) {
			return
		}
		if n.Kind != yaml.MappingNode {
			d.errorf(n, "%s: want a mapping, got %s", what, kindName(n))
			return
		}
		fields := structFields(t)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], n.Content[i+1]
			f, ok := fields[k.Value]
			if !ok {
				d.errorf(k, "%s: unknown key %q (known: %s)", what, k.Value, strings.Join(sortedKeys(fields), ", "))
				continue
			}
			d.check(val, f.Type, what+"."+k.Value)
		}
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			if t.Elem().Kind() == reflect.String && n.Kind == yaml.ScalarNode {
				d.errorf(n, "%s: want a list, got a single value (write [%s])", what, n.Value)
				return
			}
			d.errorf(n, "%s: want a list, got %s", what, kindName(n))
			return
		}
		for i, c := range n.Content {
			d.check(c, t.Elem(), fmt.Sprintf("%s[%d]", what, i))
		}
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			d.errorf(n, "%s: want a mapping, got %s", what, kindName(n))
			return
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			d.check(n.Content[i+1], t.Elem(), what+"."+n.Content[i].Value)
		}
	default:
		if n.Kind != yaml.ScalarNode {
			d.errorf(n, "%s: want a single value, got %s", what, kindName(n))
			return
		}
		if t == durationType {
			if _, err := time.ParseDuration(n.Value); err != nil {
				d.errorf(n, "%s: %q is not a duration (write e.g. 30s, 5m, 1h)", what, n.Value)
			}
			return
		}
		// A number or a boolean of the wrong form ("after: many") is
		// found here, at the value's own position: the decode of the
		// enclosing document would report it at the document's start.
		switch t.Kind() {
		case reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
			reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
			reflect.Float32, reflect.Float64:
			err := n.Decode(reflect.New(t).Interface())
			// yaml.v3 truncates a float into an integer field without a
			// word (after: 1.5 is read as 1); a fraction there is a
			// mistake the admin should see, not a rounding picket makes.
			if err == nil && t.Kind() != reflect.Float32 && t.Kind() != reflect.Float64 && n.ShortTag() == "!!float" {
				var f float64
				if n.Decode(&f) != nil || f != math.Trunc(f) {
					err = fmt.Errorf("fraction")
				}
			}
			if err != nil {
				d.errorf(n, "%s: %q is not %s", what, n.Value, kindWord(t.Kind()))
			}
		}
	}
}

func structFields(t reflect.Type) map[string]reflect.StructField {
	out := map[string]reflect.StructField{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		tag := f.Tag.Get("yaml")
		name, opts, _ := strings.Cut(tag, ",")
		if name == "-" {
			continue
		}
		if strings.Contains(opts, "inline") {
			for k, v := range structFields(f.Type) {
				out[k] = v
			}
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		out[name] = f
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func kindWord(k reflect.Kind) string {
	switch k {
	case reflect.Bool:
		return "true or false"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a whole number, 0 or more"
	}
	return "a whole number"
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return fmt.Sprintf("%q", n.Value)
	}
	return "nothing"
}

// cleanYAMLError drops yaml.v3's "yaml: unmarshal errors:\n  line N:" prefix;
// the position is reported separately.
func cleanYAMLError(err error) string {
	s := err.Error()
	s = strings.TrimPrefix(s, "yaml: unmarshal errors:\n")
	s = strings.TrimSpace(s)
	if i := strings.Index(s, ": "); strings.HasPrefix(s, "line ") && i > 0 {
		s = s[i+2:]
	}
	return s
}
