package rules

import (
	"fmt"
	"path"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Host is who a configuration is evaluated as: a name and the labels the
// hosts section gives it.
type Host struct {
	Name   string   `json:"name"`
	Labels []string `json:"labels"`
}

// Host returns the host called name, with its labels.
func (c *Config) Host(name string) Host {
	h := Host{Name: name, Labels: []string{}}
	seen := map[string]bool{}
	for _, hs := range c.Hosts {
		if ok, _ := path.Match(hs.Match, name); ok {
			for _, l := range hs.Labels {
				if !seen[l] {
					seen[l] = true
					h.Labels = append(h.Labels, l)
				}
			}
		}
	}
	return h
}

// Selector picks hosts: names, globs ("web-*"), labels ("label:mail"), and
// exclusions ("!nantes"). Empty selects every host. A host is selected when
// it matches some positive term (or there is none) and no negative one.
type Selector struct {
	terms []selTerm
	text  []string
}

type selTerm struct {
	neg   bool
	label string
	glob  string
}

func parseSelector(terms []string) (Selector, error) {
	s := Selector{text: terms}
	for _, t := range terms {
		st := selTerm{}
		if strings.HasPrefix(t, "!") {
			st.neg, t = true, t[1:]
		}
		if strings.HasPrefix(t, "label:") {
			st.label = strings.TrimPrefix(t, "label:")
			if st.label == "" {
				return s, fmt.Errorf("empty label in %q", t)
			}
		} else {
			if t == "" {
				return s, fmt.Errorf("empty host name")
			}
			if _, err := path.Match(t, ""); err != nil {
				return s, fmt.Errorf("bad host glob %q: %v", t, err)
			}
			st.glob = t
		}
		s.terms = append(s.terms, st)
	}
	return s, nil
}

// Matches reports whether h is selected.
func (s Selector) Matches(h Host) bool {
	positive, matched := false, false
	for _, t := range s.terms {
		hit := false
		if t.label != "" {
			for _, l := range h.Labels {
				if l == t.label {
					hit = true
				}
			}
		} else {
			hit, _ = path.Match(t.glob, h.Name)
		}
		if t.neg {
			if hit {
				return false
			}
			continue
		}
		positive = true
		if hit {
			matched = true
		}
	}
	return !positive || matched
}

// String is the selector as written.
func (s Selector) String() string {
	if len(s.text) == 0 {
		return "all hosts"
	}
	return strings.Join(s.text, ", ")
}

// selector reads a `hosts:` value: a name or a list of them.
func (l *loader) selector(d *decoder, n *yaml.Node, what string) Selector {
	var terms []string
	switch n.Kind {
	case 0:
		return Selector{}
	case yaml.ScalarNode:
		terms = []string{n.Value}
	case yaml.SequenceNode:
		for _, c := range n.Content {
			if c.Kind != yaml.ScalarNode {
				d.errorf(c, "%s: want host names, globs or label:NAME", what)
				continue
			}
			terms = append(terms, c.Value)
		}
	default:
		d.errorf(n, "%s: want a host name or a list of them", what)
		return Selector{}
	}
	s, err := parseSelector(terms)
	if err != nil {
		d.errorf(n, "%s: %v", what, err)
	}
	return s
}

// value is v's value on host h: the first selector that matches, else the
// default; ok is false when neither applies.
func (v *Var) value(h Host) (any, bool) {
	for _, hv := range v.ByHost {
		if hv.Hosts.Matches(h) {
			return hv.Value, true
		}
	}
	return v.Default, v.Default != nil
}

// VarsFor resolves the global and rule variables as host h sees them; the
// rule's own win over the global ones.
func (c *Config) VarsFor(r *Rule, h Host) map[string]any {
	out := map[string]any{}
	for _, list := range [][]*Var{c.Vars, r.Vars} {
		for _, v := range list {
			if val, ok := v.value(h); ok {
				out[v.Name] = val
			} else {
				delete(out, v.Name)
			}
		}
	}
	return out
}
