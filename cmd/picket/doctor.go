package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/picket-guard/picket/internal/collect"
	"github.com/picket-guard/picket/internal/doctor"
	"github.com/picket-guard/picket/internal/snapshot"
	"github.com/picket-guard/picket/internal/term"
)

const doctorSynopsis = `Name the exhaustion, show the kernel's evidence, give the fix.

Takes two snapshots --interval apart (rates need both) and runs every check:
tcp-orphans, tcp-memory, beancounters, other-sockets, process-storm,
cgroup-limits, memory-thrashing, fd-exhaustion, conntrack, socket-leak (see
docs/checks.md).

Exit status, as a Nagios plugin: 0 ok, 1 warning, 2 critical, 3 unknown
(the worst finding wins; unknown only when nothing else is wrong). Bad flags
and a root that cannot be read are unknown (3) too.

--check ID runs one check as one monitoring service (Icinga, Nagios, Sensu,
Zabbix): its first line follows the Monitoring Plugins guidelines (here
folded),

  PICKET TCP-ORPHANS WARNING - 21564 orphans ×4 = 86256 exceed ... |
      'orphans'=21564;16384;65536;0;65536 'orphans_x2'=43128;;;0;65536 ...

with performance data for every number the check grades or weighs, its
thresholds and its limit as max; the explanation and the fix follow as long
text. --warning and --critical override a threshold for this call, in the
plugins' range syntax (10, 10:, ~:10, @10:20), for the check's first metric
or for one named: --critical orphans=30000. The other flags' thresholds
apply too. packaging/icinga2/ has an Icinga 2 CheckCommand.`

// doctorUnknown is the Nagios status for "could not check".
const doctorUnknown = 3

func runDoctor(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("doctor", doctorSynopsis, stdout, stderr)
	root := fs.String("root", "/", "read `DIR`/proc and DIR/etc as if DIR were / (a fixture tree); the live system is not touched")
	asJSON := fs.Bool("json", false, `print {"status", "findings": [{"id", "severity", "title", "evidence", "explanation", "fix"}]}`)
	interval := fs.Duration("interval", time.Second, "time between the two snapshots rates are measured over; 0 takes one snapshot (rate checks then rely on PSI or say unknown)")
	verbose := fs.Bool("verbose", false, "print evidence and explanation of ok findings too")
	color := fs.String("color", "auto", "colour the verdicts: auto (only on a terminal, unless NO_COLOR is set), always, never")
	snapFile := fs.String("snapshot", "", "diagnose a saved `FILE` of picket snapshot --json (an incident's) instead of this host: one snapshot, so rates rely on PSI")
	checkID := fs.String("check", "", "run only check `ID` and print it as a monitoring plugin: one status line with performance data (see above)")
	over := doctor.Overrides{Warn: map[string]doctor.Range{}, Crit: map[string]doctor.Range{}}
	fs.Func("warning", "with --check: warn outside `[LABEL=]RANGE` (plugin range syntax) instead of the check's own threshold for that metric (the first one without LABEL); repeatable", rangeFlag(over.Warn))
	fs.Func("critical", "with --check: critical outside `[LABEL=]RANGE`, as --warning; repeatable", rangeFlag(over.Crit))
	th := doctor.DefaultThresholds()
	thresholdFlags(fs, &th)
	if st, stop := parseFlags(fs, args); stop {
		if st == 0 {
			return 0
		}
		return doctorUnknown
	}
	fail := func(format string, a ...any) int {
		if *checkID != "" && !*asJSON {
			doctor.PluginError(stdout, *checkID, fmt.Sprintf(format, a...))
			return doctorUnknown
		}
		fmt.Fprintf(stderr, "picket doctor: "+format+"\n", a...)
		return doctorUnknown
	}
	checks := doctor.Checks()
	if *checkID != "" {
		var ids []string
		var one []doctor.Check
		for _, c := range checks {
			ids = append(ids, c.ID())
			if c.ID() == *checkID {
				one = append(one, c)
			}
		}
		if len(one) == 0 {
			return fail("--check %q: no such check (want one of %s)", term.Escape(*checkID), strings.Join(ids, ", "))
		}
		checks = one
	} else if !over.Empty() {
		return fail("--warning and --critical need --check ID: they set one check's thresholds")
	}
	if err := th.Validate(); err != nil {
		return fail("%s", strings.ReplaceAll(err.Error(), "\n", "; "))
	}
	if *interval < 0 {
		return fail("--interval %s: want 0 or more", *interval)
	}
	useColor, err := wantColor(*color, stdout)
	if err != nil {
		return fail("%v", err)
	}

	in := doctor.Input{Interval: *interval, Thresholds: th}
	var cur *snapshot.Snapshot
	if *snapFile != "" {
		s, err := readSnapshot(*snapFile)
		if err != nil {
			return fail("%s", term.Escape(err.Error()))
		}
		cur, in.Interval = s, 0
	} else {
		var ok bool
		if cur, ok = collectTwo(ctx, *root, *interval, &in, fail); !ok {
			return doctorUnknown
		}
	}
	in.Cur = cur
	rep := doctor.Run(in, checks)
	if *checkID != "" {
		f, err := doctor.WithOverrides(rep.Findings[0], over)
		if err != nil {
			return fail("%v", err)
		}
		rep.Findings[0], rep.Status = f, f.Severity
		if !*asJSON {
			var notes []string
			for _, e := range cur.Errors {
				notes = append(notes, "could not read "+term.Escape(e))
			}
			if err := doctor.WritePlugin(stdout, f, notes); err != nil {
				return doctorUnknown
			}
			return rep.ExitCode()
		}
	}

	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return fail("%v", err)
		}
	} else {
		if err := doctor.WriteText(stdout, rep, doctor.TextOptions{Color: useColor, Verbose: *verbose}); err != nil {
			return fail("%v", err)
		}
		if *verbose && cur.Collector != "" {
			fmt.Fprintf(stdout, "\n%s\n", collectorLine(cur))
		}
	}
	for _, e := range cur.Errors {
		fmt.Fprintf(stderr, "picket doctor: could not read %s\n", term.Escape(e))
	}
	return rep.ExitCode()
}

// collectTwo takes the snapshots doctor reads: one, or two interval apart
// (the first into in.Prev). A partial snapshot is still worth diagnosing:
// the checks whose files failed say unknown, the rest still speak.
func collectTwo(ctx context.Context, root string, interval time.Duration, in *doctor.Input, fail func(string, ...any) int) (*snapshot.Snapshot, bool) {
	c, err := collect.New(collect.Options{Root: root, BPFMinFiles: collect.OneShotMinFiles, BPFPinDir: bpfPins(root)})
	if err != nil {
		fail("%s", term.Escape(err.Error()))
		return nil, false
	}
	collectOne := func() (*snapshot.Snapshot, bool) {
		s, err := c.Collect(ctx, collect.Full)
		if s == nil || ctx.Err() != nil {
			if err == nil {
				err = ctx.Err()
			}
			fail("%s", term.Escape(err.Error()))
			return nil, false
		}
		return s, true
	}
	if interval > 0 {
		prev, ok := collectOne()
		if !ok {
			return nil, false
		}
		in.Prev = prev
		t := time.NewTimer(interval)
		select {
		case <-ctx.Done():
			t.Stop()
			fail("interrupted")
			return nil, false
		case <-t.C:
		}
	}
	return collectOne()
}

// rangeFlag parses --warning/--critical values, [LABEL=]RANGE, into m.
func rangeFlag(m map[string]doctor.Range) func(string) error {
	return func(v string) error {
		label, spec := "", v
		if l, r, ok := strings.Cut(v, "="); ok {
			label, spec = l, r
		}
		r, err := doctor.ParseRange(spec)
		if err != nil {
			return err
		}
		m[label] = r
		return nil
	}
}

// thresholdFlags binds every threshold to a flag whose default is the
// documented one.
func thresholdFlags(fs *flag.FlagSet, t *doctor.Thresholds) {
	fs.Float64Var(&t.LimitWarnPercent, "warn-percent", t.LimitWarnPercent, "warning at this `PERCENT` of a kernel limit: file-max, pid_max, threads-max, RLIMIT_NPROC, RLIMIT_NOFILE, nf_conntrack_max")
	fs.Float64Var(&t.LimitCritPercent, "crit-percent", t.LimitCritPercent, "critical at this `PERCENT` of a kernel limit")
	fs.Float64Var(&t.BeancounterWarnPercent, "beancounter-percent", t.BeancounterWarnPercent, "warning when a beancounter is held at this `PERCENT` of its barrier (failcnt > 0 is always critical)")
	fs.IntVar(&t.StormMinCount, "storm-min", t.StormMinCount, "a user × command group of at least `N` processes...")
	fs.Float64Var(&t.StormMinPercent, "storm-percent", t.StormMinPercent, "...and at least this `PERCENT` of all processes is a storm")
	fs.IntVar(&t.HolderMinSockets, "holder-min", t.HolderMinSockets, "a process holding at least `N` non-TCP sockets...")
	fs.Float64Var(&t.HolderMinPercent, "holder-percent", t.HolderMinPercent, "...and this `PERCENT` of all of them is outsized")
	fs.Float64Var(&t.PSISomeWarn, "psi-some-warn", t.PSISomeWarn, "warning at this memory PSI some avg10 `PERCENT`")
	fs.Float64Var(&t.PSISomeCrit, "psi-some-crit", t.PSISomeCrit, "critical at this memory PSI some avg10 `PERCENT`")
	fs.Float64Var(&t.PSIFullWarn, "psi-full-warn", t.PSIFullWarn, "warning at this memory PSI full avg10 `PERCENT`")
	fs.Float64Var(&t.PSIFullCrit, "psi-full-crit", t.PSIFullCrit, "critical at this memory PSI full avg10 `PERCENT`")
	fs.Float64Var(&t.SwapWarnPages, "swap-warn", t.SwapWarnPages, "warning when `PAGES` per second are swapped both in and out")
	fs.Float64Var(&t.SwapCritPages, "swap-crit", t.SwapCritPages, "critical when `PAGES` per second are swapped both in and out")
	fs.Float64Var(&t.MajfaultWarn, "majfault-warn", t.MajfaultWarn, "warning at `N` major faults per second (only without PSI)")
	fs.Float64Var(&t.MajfaultCrit, "majfault-crit", t.MajfaultCrit, "critical at `N` major faults per second (only without PSI)")
	fs.DurationVar(&t.ForecastWarn, "forecast-warn", t.ForecastWarn, "warning when a limit's trend reaches it within `DURATION` (exhaustion-forecast; needs the forecasts of picket run)")
	fs.DurationVar(&t.ForecastCrit, "forecast-crit", t.ForecastCrit, "critical when a limit's trend reaches it within `DURATION`")
	fs.IntVar(&t.Top, "top", t.Top, "rows per evidence table")
}

// wantColor decides on colour: "auto" means stdout is a terminal and
// NO_COLOR (no-color.org) is unset.
func wantColor(mode string, stdout io.Writer) (bool, error) {
	switch mode {
	case "always":
		return true, nil
	case "never":
		return false, nil
	case "auto":
		if os.Getenv("NO_COLOR") != "" {
			return false, nil
		}
		f, ok := stdout.(*os.File)
		if !ok {
			return false, nil
		}
		_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
		return err == nil, nil
	}
	return false, fmt.Errorf("--color %q: want auto, always or never", mode)
}

// collectorLine says how the look attributed sockets to processes, for
// --verbose: the BPF iterator, or the /proc walk and why.
func collectorLine(s *snapshot.Snapshot) string {
	line := "sockets attributed by: proc (a readlink of every /proc/PID/fd entry): " + term.Escape(s.CollectorReason)
	if s.Collector == snapshot.CollectorBPF {
		line = "sockets attributed by: bpf (one pass of a BPF task_file iterator)"
		if s.BPFPrograms != "" {
			line += "\nBPF programs: " + term.Escape(s.BPFPrograms)
		}
	}
	switch s.ProcessCollector {
	case snapshot.CollectorBPF:
		line += "\nprocesses read by: bpf (one pass of a BPF task iterator)"
	case snapshot.CollectorProc:
		line += "\nprocesses read by: proc (each /proc/PID/stat, status and cgroup): " + term.Escape(s.ProcessCollectorReason)
	}
	return line
}
