package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/picket-guard/picket/internal/act"
	"github.com/picket-guard/picket/internal/term"
)

func runUndo(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("undo", "picket undo ID: revert action ID (see picket journal) — remove a throttle's nftables rule, thaw a frozen\ntree, put a sysctl's old value back (only while it still holds what picket wrote). Kills, archives and\nexecs cannot be undone. The revert is journaled. Exit 0 when reverted, 1 when not, 2 on bad usage.", stdout, stderr)
	stateDir := fs.String("state-dir", act.DefaultStateDir(), "the `DIR` holding journal.jsonl")
	root := fs.String("root", "/", "read `DIR`/proc (and DIR/proc/sys) as if DIR were / (a fixture tree)")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	// The ID may stand before or after the flags.
	parse := func(a []string) (int, bool) {
		err := fs.Parse(a)
		if errors.Is(err, flag.ErrHelp) {
			return 0, true
		}
		if err != nil {
			return 2, true
		}
		return 0, false
	}
	if st, stop := parse(args); stop {
		return st
	}
	if fs.NArg() == 0 {
		fmt.Fprintln(stderr, "picket undo: which action? Give its ID (picket journal lists them)")
		return 2
	}
	id := fs.Arg(0)
	if st, stop := parse(fs.Args()[1:]); stop {
		return st
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "picket undo: unexpected argument %q\n", term.Escape(fs.Arg(0)))
		return 2
	}
	r, err := act.NewRunner(act.Options{StateDir: *stateDir, Root: *root})
	if err != nil {
		fmt.Fprintf(stderr, "picket undo: %s\n", term.Escape(err.Error()))
		return 1
	}
	defer r.Close()
	res, err := r.Undo(ctx, id)
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.Encode(res)
	} else if err == nil {
		fmt.Fprintf(stdout, "%s %s: %s\n", term.Escape(id), res.Type, term.Escape(res.Result))
	}
	if err != nil {
		fmt.Fprintf(stderr, "picket undo: %s\n", term.Escape(err.Error()))
		return 1
	}
	return 0
}
