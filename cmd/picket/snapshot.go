package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"

	"github.com/picket-guard/picket/internal/act"
	"github.com/picket-guard/picket/internal/collect"
	"github.com/picket-guard/picket/internal/forecast"
	"github.com/picket-guard/picket/internal/history"
	"github.com/picket-guard/picket/internal/snapshot"
	"github.com/picket-guard/picket/internal/sockiter"
	"github.com/picket-guard/picket/internal/term"
)

func runSnapshot(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("snapshot", "Print every process and socket against the kernel's limits, in one pass over /proc.\nExit 0, or 1 when a source could not be read (the rest is still printed).", stdout, stderr)
	root := fs.String("root", "/", "read `DIR`/proc and DIR/sys as if DIR were / (a fixture tree); the live system is not touched")
	asJSON := fs.Bool("json", false, "print the whole snapshot as one JSON object (complete, not truncated): indented on a terminal, on one line otherwise (pipe it to jq to read it)")
	top := fs.Int("top", 10, "rows per table in the human summary")
	method := fs.String("collector", "auto", "how sockets are attributed to processes: `auto` (the BPF iterator on a busy host where it loads, else the /proc walk), bpf (the iterator wherever it loads) or proc (the /proc walk)")
	stateDir := fs.String("state-dir", "", "read picket run's history in `DIR` (default /var/lib/picket as root, else the XDG state dir; only for this host unless given) for the forecasts: the snapshot's \"forecasts\", each limit's time to exhaustion at its trend")
	if st, stop := parseFlags(fs, args); stop {
		return st
	}
	opts := collect.Options{Root: *root, BPFMinFiles: collect.OneShotMinFiles, BPFPinDir: bpfPins(*root)}
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
	if *stateDir != "" || *root == "/" {
		snap.Forecasts = pastForecasts(snap, *stateDir)
	}
	if *asJSON {
		// At 3,000 processes the snapshot is ~0.8 MB: encoding/json's
		// indentation (a second pass over it, byte by byte) takes ten
		// times as long as the encoding itself and grows a buffer of
		// five. A program reading it needs none and gets one line,
		// written as it is encoded (Snapshot.WriteJSON); a person at a
		// terminal gets it indented.
		write := snap.WriteJSON
		if _, tty := terminal(stdout); tty {
			enc := json.NewEncoder(stdout)
			enc.SetIndent("", "  ")
			write = func(io.Writer) error { return enc.Encode(snap) }
		}
		if err := write(stdout); err != nil {
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

// bpfPins is where the commands pin the BPF iterators for the live host
// (sockiter.DefaultPins: /sys/fs/bpf/picket where /sys/fs/bpf is a BPF
// filesystem), and nowhere for a fixture tree, which runs no program.
func bpfPins(root string) string {
	if filepath.Clean(root) != "/" {
		return ""
	}
	return sockiter.DefaultPins()
}

// pastForecasts fits the snapshot's limits over the history picket run
// keeps (read-only: picket run may be recording meanwhile). No history,
// or none of these limits in it, is no forecast, not an error: one look
// has no trend.
func pastForecasts(snap *snapshot.Snapshot, stateDir string) []snapshot.Forecast {
	if stateDir == "" {
		stateDir = act.DefaultStateDir()
	}
	s, err := history.Open(filepath.Join(stateDir, "history.db"), history.Options{ReadOnly: true})
	if err != nil {
		return nil
	}
	defer s.Close()
	tr := forecast.NewTracker(forecast.Options{Series: history.LimitSeries})
	tr.Seed(snap, func(l forecast.Limit) []forecast.Sample { return s.LimitSamples(l, snap.Time) })
	return tr.Update(snap)
}
