package rules

import (
	"fmt"
	"io"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/picket-guard/picket/internal/term"
)

// Describe prints the configuration as host h sees it: which rules run,
// their schedule, each case with its conditions and the values of the vars
// they use, and the outputs and actions they lead to. It is what PIKT's
// preprocessor emitted for one host, so a fleet's config can be reviewed
// host by host.
func (c *Config) Describe(w io.Writer, h Host) error {
	ew := term.NewPrinter(w)
	labels := "none"
	if len(h.Labels) > 0 {
		labels = strings.Join(h.Labels, ", ")
	}
	ew.Printf("host %s (labels: %s)\n", term.Escape(h.Name), term.Escape(labels))
	var skipped []string
	for _, r := range c.Rules {
		if !r.Hosts.Matches(h) {
			skipped = append(skipped, fmt.Sprintf("%s (hosts: %s)", r.Name, r.Hosts))
			continue
		}
		status := ""
		if !r.Active {
			status = "  INACTIVE"
		}
		sched := "every " + shortDur(r.Every)
		if r.Drift > 0 {
			sched += " ± " + shortDur(r.Drift)
		}
		ew.Printf("\nrule %s  [%s] %s over %s%s\n", r.Name, r.Level, sched, r.Table, status)
		if r.Task != "" {
			ew.Printf("  task: %s\n", r.Task)
		}
		var hyst []string
		if r.After > 1 {
			hyst = append(hyst, fmt.Sprintf("after %d matches", r.After))
		}
		if r.For > 0 {
			hyst = append(hyst, "for "+shortDur(r.For))
		}
		if r.Renotify > 0 {
			hyst = append(hyst, "renotify every "+shortDur(r.Renotify))
		}
		if r.DryRun {
			hyst = append(hyst, "actions dry-run")
		}
		if len(hyst) > 0 {
			ew.Printf("  %s\n", strings.Join(hyst, ", "))
		}
		vars := c.VarsFor(r, h)
		if len(vars) > 0 {
			var vs []string
			for _, k := range sortedKeys(vars) {
				vs = append(vs, fmt.Sprintf("%s = %v", k, vars[k]))
			}
			ew.Printf("  vars: %s\n", strings.Join(vs, ", "))
		}
		if r.Where != nil {
			ew.Printf("  where %s\n", r.Where.Src)
		}
		for _, cs := range r.Cases {
			if !cs.Hosts.Matches(h) {
				continue
			}
			ew.Printf("  case %s [%s]:", cs.Name, cs.Level)
			if cs.Match != nil {
				ew.Printf(" match %s;", cs.Match.Src)
			}
			if cs.If != nil {
				ew.Printf(" if %s", withValues(cs.If.Src, vars))
			} else {
				ew.Printf(" always")
			}
			if cs.Continue {
				ew.Printf("  (continue)")
			}
			ew.Printf("\n")
			c.describeItems(ew, cs.Then, "    → ", 0)
		}
	}
	if len(skipped) > 0 {
		sort.Strings(skipped)
		ew.Printf("\nnot on this host: %s\n", strings.Join(skipped, "; "))
	}
	return ew.Err()
}

// withValues appends the values of the vars an expression uses.
func withValues(src string, vars map[string]any) string {
	var used []string
	for _, k := range sortedKeys(vars) {
		if strings.Contains(src, "vars."+k) {
			used = append(used, fmt.Sprintf("%s = %v", k, vars[k]))
		}
	}
	if len(used) == 0 {
		return src
	}
	return src + "  (" + strings.Join(used, ", ") + ")"
}

func (c *Config) describeItems(ew *term.Printer, items []*Item, indent string, depth int) {
	for _, it := range items {
		switch {
		case it.Output != "":
			kind := ""
			if o := c.Outputs[it.Output]; o != nil {
				kind = " (" + o.Kind + ")"
			}
			ew.Printf("%soutput %s%s\n", indent, it.Output, kind)
		case it.OutputKind != "":
			ew.Printf("%soutput %s %s\n", indent, it.OutputKind, compact(it.Spec))
		case it.ActionKind != "":
			ew.Printf("%s%s %s\n", indent, it.ActionKind, compact(it.Spec))
		case it.Macro != "":
			var args []string
			for _, k := range sortedKeys(it.Args) {
				args = append(args, fmt.Sprintf("%s=%s", k, it.Args[k].Src))
			}
			ew.Printf("%scall %s(%s)\n", indent, it.Macro, strings.Join(args, ", "))
			if m := c.Macros[it.Macro]; m != nil && depth < 8 {
				c.describeItems(ew, m.Do, indent+"  ", depth+1)
			}
		}
	}
}

// compact prints a spec in YAML flow style by its yaml tags, leaving out
// zero values: {user: "{{.user}}", signal: TERM, grace: 5s}.
func compact(spec any) string {
	return flow(reflect.ValueOf(spec))
}

func flow(v reflect.Value) string {
	for v.Kind() == reflect.Pointer || v.Kind() == reflect.Interface {
		if v.IsNil() {
			return "~"
		}
		v = v.Elem()
	}
	switch v.Kind() {
	case reflect.Struct:
		if v.Type() == reflect.TypeOf(time.Duration(0)) {
			return shortDur(v.Interface().(time.Duration))
		}
		var parts []string
		for i := 0; i < v.NumField(); i++ {
			f := v.Type().Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			if !f.IsExported() || name == "-" || v.Field(i).IsZero() {
				continue
			}
			if name == "" {
				name = strings.ToLower(f.Name)
			}
			parts = append(parts, name+": "+flow(v.Field(i)))
		}
		return "{" + strings.Join(parts, ", ") + "}"
	case reflect.Slice:
		var parts []string
		for i := 0; i < v.Len(); i++ {
			parts = append(parts, flow(v.Index(i)))
		}
		return "[" + strings.Join(parts, ", ") + "]"
	case reflect.Map:
		var parts []string
		for _, k := range v.MapKeys() {
			parts = append(parts, fmt.Sprint(k.Interface())+": "+flow(v.MapIndex(k)))
		}
		sort.Strings(parts)
		return "{" + strings.Join(parts, ", ") + "}"
	case reflect.String:
		s := v.String()
		if s == "" || strings.ContainsAny(s, "{}[],:#&*!|>'\"%@`") || strings.TrimSpace(s) != s {
			return strconv.Quote(s)
		}
		return s
	case reflect.Int64:
		if v.Type() == reflect.TypeOf(time.Duration(0)) {
			return shortDur(time.Duration(v.Int()))
		}
	}
	return fmt.Sprint(v.Interface())
}

// shortDur prints 5m rather than 5m0s.
func shortDur(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
