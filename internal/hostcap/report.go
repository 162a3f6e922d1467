package hostcap

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// WriteText prints the probe as `picket version --features` does: the
// host, then each feature found or not with what picket does with it or
// instead of it, then the capabilities.
func (s *Set) WriteText(w io.Writer) error {
	fmt.Fprintf(w, "kernel %s", s.Kernel)
	if !s.Live {
		fmt.Fprintf(w, " (the tree %s: only its files were probed)", s.Root)
	}
	fmt.Fprintf(w, "\n")
	who := fmt.Sprintf("euid %d", s.EUID)
	if s.EUID == 0 {
		who = "root"
	}
	where := "not in a container"
	if s.Container != "" {
		where = "in a " + s.Container + " container (" + s.ContainerEvidence + ")"
	}
	fmt.Fprintf(w, "running as %s, %s; cgroups %s\n\n", who, where, s.Cgroups.Layout)

	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "FEATURE\tFOUND\tSINCE\tWHAT PICKET DOES")
	for _, f := range s.Features() {
		state := "no"
		switch {
		case f.Found:
			state = "yes"
		case !f.Probed:
			state = "-"
		}
		since := Since(f.Name)
		if since == "" {
			since = "-"
		}
		does := Uses(f.Name)
		if !f.Found {
			does = "without: " + Fallback(f.Name)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", f.Name, state, since, does)
		if f.Detail != "" {
			fmt.Fprintf(tw, "\t\t\t  (%s)\n", f.Detail)
		}
	}
	fmt.Fprintln(tw, "\t\t\t")
	fmt.Fprintln(tw, "CAPABILITY\tHELD\t\tWHAT PICKET DOES")
	for _, c := range Relevant() {
		if s.HasCap(c) {
			fmt.Fprintf(tw, "%s\tyes\t\t%s\n", c, CapUses(c))
		} else {
			fmt.Fprintf(tw, "%s\tno\t\twithout: %s\n", c, CapFallback(c))
		}
	}
	return tw.Flush()
}

// Notices are the lines the daemon logs once at start: each feature
// probed and missing and each capability not held, with what picket does
// instead.
func (s *Set) Notices() []string {
	var out []string
	for _, f := range s.Missing() {
		out = append(out, fmt.Sprintf("no %s (%s): %s", f.Name, f.Detail, Fallback(f.Name)))
	}
	for _, c := range s.MissingCaps() {
		out = append(out, fmt.Sprintf("no %s: %s", c, CapFallback(c)))
	}
	return out
}

// MissingCaps lists the capabilities of Relevant that picket does not
// hold.
func (s *Set) MissingCaps() []Cap {
	var out []Cap
	for _, c := range Relevant() {
		if !s.HasCap(c) {
			out = append(out, c)
		}
	}
	return out
}

// Summary is one line: the features missing and the capabilities not
// held, for /healthz and the start log.
func (s *Set) Summary() string {
	var miss []string
	for _, f := range s.Missing() {
		miss = append(miss, string(f.Name))
	}
	for _, c := range s.MissingCaps() {
		miss = append(miss, c.String())
	}
	if len(miss) == 0 {
		return "kernel " + s.Kernel + ": every feature and capability picket uses is here"
	}
	return "kernel " + s.Kernel + ": without " + strings.Join(miss, ", ")
}
