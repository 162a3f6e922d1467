package rules

import (
	"reflect"
	"strings"
)

// What one evaluation keeps for the next. A per-process table on a host of
// 100,000 processes is 100,000 rows of a dozen fields: kept whole for every
// rule, the previous evaluation alone held hundreds of megabytes of maps.
// A rule needs of its previous rows only the fields it reads as prev.F or
// rising.F, so only those are kept, and nothing for a rule that reads
// neither. Templates may say {{.prev.total}}; their fields are not known
// before run time, so a configuration whose templates name prev or rising
// keeps whole rows, as before.

// prevFields is the set of fields a rule reads from its previous rows
// (prev.F, and rising.F, which compares F with its previous value); all is
// true when templates may read any of them.
type prevFields struct {
	all    bool
	fields []string
	rising map[string]bool
}

func (r *Rule) prevFields(templates bool) prevFields {
	pf := prevFields{all: templates, rising: map[string]bool{}}
	seen := map[string]bool{}
	for _, f := range r.reads() {
		if f == "prev.*" || f == "rising.*" {
			pf.all = true
		}
		name, isPrev := strings.CutPrefix(f, "prev.")
		if !isPrev {
			var isRising bool
			if name, isRising = strings.CutPrefix(f, "rising."); !isRising {
				continue
			}
			pf.rising[name] = true
		}
		if !seen[name] {
			seen[name] = true
			pf.fields = append(pf.fields, name)
		}
	}
	return pf
}

// keep returns what of row the next evaluation needs: nil for nothing.
func (pf *prevFields) keep(row Row) Row {
	if pf.all {
		return row
	}
	if len(pf.fields) == 0 {
		return nil
	}
	out := make(Row, len(pf.fields))
	for _, f := range pf.fields {
		if v, ok := row[f]; ok {
			out[f] = v
		}
	}
	return out
}

// keepsRising says whether the streak of field f is kept.
func (pf *prevFields) keepsRising(f string) bool { return pf.all || pf.rising[f] }

// templatesReadPrev says whether any template of the configuration (in an
// output, a rule's or a case's message, a then-list or a macro) names prev
// or rising.
func templatesReadPrev(cfg *Config) bool {
	found := false
	look := func(spec any) {
		if spec == nil || found {
			return
		}
		walkStrings(reflect.ValueOf(spec), func(s *string) {
			if strings.Contains(*s, "{{") && (strings.Contains(*s, "prev") || strings.Contains(*s, "rising")) {
				found = true
			}
		})
	}
	items := func(list []*Item) {
		for _, it := range list {
			look(it.Spec)
			for _, a := range it.Args {
				if a != nil && (strings.Contains(a.Src, "prev") || strings.Contains(a.Src, "rising")) {
					found = true
				}
			}
		}
	}
	for _, o := range cfg.Outputs {
		look(o.Spec)
	}
	for _, m := range cfg.Macros {
		items(m.Do)
	}
	names := func(t *Template) {
		if t != nil && (strings.Contains(t.Src, "prev") || strings.Contains(t.Src, "rising")) {
			found = true
		}
	}
	for _, r := range cfg.Rules {
		names(r.Message)
		for _, c := range r.Cases {
			names(c.Message)
			items(c.Then)
		}
	}
	return found
}
