package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/picket-guard/picket/internal/act"
	"github.com/picket-guard/picket/internal/term"
)

func runJournal(_ context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("journal", "List the actions picket took, oldest first, from its journal: what, to whom, with what result,\nand whether it is still in force (active throttles, freezes and sysctls can be reverted with picket undo ID).\nDry runs are not journaled. Exit 0, or 1 when the journal could not be read.", stdout, stderr)
	asJSON := fs.Bool("json", false, "print the actions as a JSON array, with the selector, the targets (pid, user, command, start time,\ncommand line), output and undo information")
	stateDir := fs.String("state-dir", act.DefaultStateDir(), "the `DIR` holding journal.jsonl")
	last := fs.Int("last", 100, "show the last `N` actions (0: every one the journal and its rotated generations hold)")
	if st, stop := parseFlags(fs, args); stop {
		return st
	}
	actions, rerr := act.TailActions(*stateDir, *last, time.Now())
	if rerr != nil && actions == nil {
		fmt.Fprintf(stderr, "picket journal: %s\n", term.Escape(rerr.Error()))
		return 1
	}
	if rerr != nil { // torn or foreign lines: the rest is still shown
		fmt.Fprintf(stderr, "picket journal: %s\n", term.Escape(rerr.Error()))
	}
	if *asJSON {
		if actions == nil {
			actions = []act.Action{}
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(actions); err != nil {
			fmt.Fprintf(stderr, "picket journal: %v\n", err)
			return 1
		}
		return 0
	}
	if len(actions) == 0 {
		fmt.Fprintf(stdout, "no actions journaled in %s\n", term.Escape(*stateDir))
		return 0
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tID\tTYPE\tRULE\tSTATE\tRESULT")
	for _, a := range actions {
		result := a.Result
		if a.Error != "" && result != a.Error && result != "refused: "+a.Error {
			result += ": " + a.Error
		}
		if who := act.Describe(a.Procs); who != "" && !strings.Contains(result, who) {
			result += "; " + who
		}
		if a.State == act.StateRefused && a.Count > 1 {
			result = fmt.Sprintf("%s ×%d, the last at %s", result, a.Count, a.Last.Local().Format(time.DateTime))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", a.Time.Local().Format(time.DateTime), term.Escape(a.ID), a.Type,
			term.Escape(dash(a.Rule)), a.State, term.Escape(result))
		if !a.Reverted.IsZero() {
			fmt.Fprintf(tw, "\t\t\t\t\t%s %s\n", a.Reverted.Local().Format(time.DateTime), term.Escape(a.RevertResult))
		}
	}
	tw.Flush()
	return 0
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
