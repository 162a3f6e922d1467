package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"

	"github.com/picket-guard/picket/internal/collect"
	"github.com/picket-guard/picket/internal/snapshot"
	"github.com/picket-guard/picket/internal/term"
)

func runSnapshot(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("snapshot", "Print every process and socket against the kernel's limits, in one pass over /proc.\nExit 0, or 1 when a source could not be read (the rest is still printed).", stdout, stderr)
	root := fs.String("root", "/", "read `DIR`/proc and DIR/sys as if DIR were / (a fixture tree); the live system is not touched")
	asJSON := fs.Bool("json", false, "print the whole snapshot as one JSON object (complete, not truncated)")
	top := fs.Int("top", 10, "rows per table in the human summary")
	method := fs.String("collector", "auto", "how sockets are attributed to processes: `auto` (the BPF iterator on a busy host where it loads, else the /proc walk), bpf (the iterator wherever it loads) or proc (the /proc walk)")
	if st, stop := parseFlags(fs, args); stop {
		return st
	}
	opts := collect.Options{Root: *root, BPFMinFiles: collect.OneShotMinFiles}
	switch *method {
	case "auto":
	case "bpf":
		opts.BPFMinFiles = 0
	case "proc":
		opts.ProcOnly = true
	default:
		fmt.Fprintf(stderr, "picket snapshot: --collector %s: want auto, bpf or proc\n", term.Escape(*method))
		return 2
	}
	c, err := collect.New(opts)
	if err != nil {
		fmt.Fprintf(stderr, "picket snapshot: %s\n", term.Escape(err.Error()))
		return 1
	}
	snap, cerr := c.Collect(ctx, collect.Full)
	if snap == nil {
		fmt.Fprintf(stderr, "picket snapshot: %s\n", term.Escape(cerr.Error()))
		return 1
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(snap); err != nil {
			fmt.Fprintf(stderr, "picket snapshot: %v\n", err)
			return 1
		}
	} else if err := snapshot.WriteSummary(stdout, snap, snapshot.SummaryOptions{Top: *top}); err != nil {
		fmt.Fprintf(stderr, "picket snapshot: %v\n", err)
		return 1
	}
	if cerr != nil {
		fmt.Fprintf(stderr, "picket snapshot: %s\n", term.Escape(cerr.Error()))
		return 1
	}
	return 0
}
