package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/picket-guard/picket/internal/act"
	"github.com/picket-guard/picket/internal/history"
	"github.com/picket-guard/picket/internal/term"
)

const historySynopsis = `picket history SERIES [--since 24h] [--step 1m] [--json]
picket history --list [PREFIX]

Print a series that picket run keeps in STATE/history.db: one line per point,
time and value, and min/max when the point stands for an interval. Series
are named by their place in the snapshot's JSON (kernel.sockstat.tcp.orphan,
kernel.file_nr.allocated, processes.total, memory.psi.memory.some_avg10) and
per process (group/USER/COMM/count, holder/PID@START/COMM/total); --list
shows them. The store is opened read-only, while the daemon runs.`

func runHistory(_ context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("history", historySynopsis, stdout, stderr)
	since := fs.String("since", "24h", "from `WHEN`: a duration before now (90m, 24h, 7d, 2w) or an RFC 3339 time")
	step := fs.Duration("step", 0, "average into intervals of `DURATION` (0: as stored: raw samples, minutes or hours, whichever covers --since)")
	asJSON := fs.Bool("json", false, "print a JSON array (of points, or of names with --list)")
	stateDir := fs.String("state-dir", "", "picket's state `DIR` (default /var/lib/picket as root, else the XDG state dir)")
	var list listFlag
	fs.Var(&list, "list", "list the series whose names start with `PREFIX` (all without one)")
	pos, st, stop := parseInterleaved(fs, args)
	if stop {
		return st
	}
	if len(pos) > 1 || (len(pos) == 0 && !list.set) {
		fmt.Fprintf(stderr, "picket history: give one SERIES, or --list [PREFIX] (picket history --help)\n")
		return 2
	}
	sd := *stateDir
	if sd == "" {
		sd = act.DefaultStateDir()
	}
	path := filepath.Join(sd, "history.db")
	s, err := history.Open(path, history.Options{ReadOnly: true})
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			fmt.Fprintf(stderr, "picket history: no history at %s: picket run keeps it there (or give --state-dir)\n", term.Escape(path))
		} else {
			fmt.Fprintf(stderr, "picket history: %s\n", term.Escape(err.Error()))
		}
		return 1
	}
	defer s.Close()

	if list.set {
		prefix := list.prefix
		if len(pos) == 1 {
			prefix = pos[0]
		}
		names, err := s.Series(prefix)
		if err != nil {
			fmt.Fprintf(stderr, "picket history: %s\n", term.Escape(err.Error()))
			return 1
		}
		if *asJSON {
			return writeJSON(stdout, stderr, append([]string{}, names...))
		}
		for _, n := range names {
			fmt.Fprintln(stdout, term.Escape(n))
		}
		return 0
	}

	from, err := parseSince(*since, time.Now())
	if err != nil {
		fmt.Fprintf(stderr, "picket history: --since: %v\n", err)
		return 2
	}
	name := pos[0]
	pts, err := s.Query(name, from, time.Time{}, *step)
	if errors.Is(err, history.ErrNoSeries) && strings.Contains(name, `\`) {
		// The name as --list printed it: escaped. Undo the escaping.
		if u, uerr := strconv.Unquote(`"` + name + `"`); uerr == nil {
			name = u
			pts, err = s.Query(name, from, time.Time{}, *step)
		}
	}
	if errors.Is(err, history.ErrNoSeries) {
		fmt.Fprintf(stderr, "picket history: no series %s (picket history --list shows them)\n", term.Escape(name))
		return 1
	}
	if err != nil {
		fmt.Fprintf(stderr, "picket history: %s\n", term.Escape(err.Error()))
		return 1
	}
	if *asJSON {
		return writeJSON(stdout, stderr, append([]history.Point{}, pts...))
	}
	for _, p := range pts {
		line := p.Time.Format(time.RFC3339) + "  " + formatValue(p.Value)
		if p.Min != p.Max {
			line += "  min " + formatValue(p.Min) + "  max " + formatValue(p.Max)
		}
		fmt.Fprintln(stdout, line)
	}
	if len(pts) == 0 {
		fmt.Fprintf(stderr, "picket history: %s has no samples since %s\n", term.Escape(name), from.Format(time.RFC3339))
	}
	return 0
}

func writeJSON(stdout, stderr io.Writer, v any) int {
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		fmt.Fprintf(stderr, "picket history: %v\n", err)
		return 1
	}
	return 0
}

// formatValue prints a value with at most three decimals (averages of
// counts), and counts as integers.
func formatValue(v float64) string {
	return strconv.FormatFloat(math.Round(v*1000)/1000, 'f', -1, 64)
}

// listFlag is --list, alone or with a prefix (--list=PREFIX, or the
// argument after it).
type listFlag struct {
	set    bool
	prefix string
}

func (l *listFlag) String() string   { return l.prefix }
func (l *listFlag) IsBoolFlag() bool { return true }
func (l *listFlag) Set(v string) error {
	l.set = true
	if v != "true" {
		l.prefix = v
	}
	return nil
}

// parseInterleaved parses flags that may come before or after the
// positional arguments (picket history SERIES --since 7d).
func parseInterleaved(fs *flag.FlagSet, args []string) (pos []string, status int, stop bool) {
	for {
		// parseFlags rejects positional arguments; parse here and collect
		// them instead.
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, 0, true
			}
			return nil, 2, true
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, 0, false
		}
		// After "--" everything is positional.
		if n := len(args) - len(rest); n > 0 && args[n-1] == "--" {
			return append(pos, rest...), 0, false
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// parseSince reads --since: a duration before now, with d and w for days
// and weeks, or an RFC 3339 time.
func parseSince(s string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	unit := time.Duration(0)
	switch {
	case strings.HasSuffix(s, "d"):
		unit = 24 * time.Hour
	case strings.HasSuffix(s, "w"):
		unit = 7 * 24 * time.Hour
	}
	if unit != 0 {
		n, err := strconv.ParseFloat(s[:len(s)-1], 64)
		if err != nil || n < 0 {
			return time.Time{}, fmt.Errorf("%q is not a duration (90m, 24h, 7d) or an RFC 3339 time", s)
		}
		return now.Add(-time.Duration(n * float64(unit))), nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return time.Time{}, fmt.Errorf("%q is not a duration (90m, 24h, 7d) or an RFC 3339 time", s)
	}
	return now.Add(-d), nil
}
