package rules

import "sort"

// ActionUses maps each action kind the configuration can take to the
// active rules that take it (through a case's then: or a macro it calls),
// sorted: what `picket validate` and `picket run` check against the host.
func (c *Config) ActionUses() map[string][]string {
	out := map[string][]string{}
	for _, r := range c.Rules {
		if !r.Active {
			continue
		}
		kinds := map[string]bool{}
		var walk func(items []*Item, depth int)
		walk = func(items []*Item, depth int) {
			for _, it := range items {
				switch {
				case it.ActionKind != "":
					kinds[it.ActionKind] = true
				case it.Macro != "" && depth < 8:
					if m := c.Macros[it.Macro]; m != nil {
						walk(m.Do, depth+1)
					}
				}
			}
		}
		for _, cs := range r.Cases {
			walk(cs.Then, 0)
		}
		for k := range kinds {
			out[k] = append(out[k], r.Name)
		}
	}
	for k := range out {
		sort.Strings(out[k])
	}
	return out
}
