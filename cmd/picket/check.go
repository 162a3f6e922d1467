package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/picket-guard/picket/internal/act"
	"github.com/picket-guard/picket/internal/alarm"
	"github.com/picket-guard/picket/internal/collect"
	"github.com/picket-guard/picket/internal/doctor"
	"github.com/picket-guard/picket/internal/notify"
	"github.com/picket-guard/picket/internal/procid"
	"github.com/picket-guard/picket/internal/rules"
	"github.com/picket-guard/picket/internal/secpath"
	"github.com/picket-guard/picket/internal/snapshot"
	"github.com/picket-guard/picket/internal/term"
)

// checkReport is `picket check --json` (a contract: scripts read it).
type checkReport struct {
	Host   string       `json:"host"`
	DryRun bool         `json:"dry_run"`
	Alarms []checkAlarm `json:"alarms"`
	Errors []string     `json:"errors,omitempty"`
}

type checkAlarm struct {
	Rule    string         `json:"rule"`
	Level   alarm.Level    `json:"level"`
	Case    string         `json:"case"`
	Row     map[string]any `json:"row"`
	Message string         `json:"message"`
	Outputs []checkOutput  `json:"outputs"`
	Actions []act.Result   `json:"actions"`
}

type checkOutput struct {
	Name   string `json:"name"`
	Kind   string `json:"kind"`
	DryRun bool   `json:"dry_run"`
	Result string `json:"result"`
}

func runCheck(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("check", `Evaluate every active rule once, now (schedules and for/after ignored), then
send the outputs and take the actions — or, with --dry-run, say what they
would do. Exit 0: no alarm; 1: alarms; 2: bad flags or configuration;
3: the host could not be read.`, stdout, stderr)
	cfgPath := fs.String("config", "", "configuration `FILE` (default: the built-in one)")
	hostName := fs.String("host", "", "evaluate as if this host were called `NAME` (default: its own name)")
	dryRun := fs.Bool("dry-run", false, "send nothing, change nothing: print what the outputs and actions would do")
	asJSON := fs.Bool("json", false, "print the alarms as JSON")
	root := fs.String("root", "/", "read `DIR`/proc as if DIR were / (a fixture tree)")
	snapFile := fs.String("snapshot", "", "evaluate a saved `FILE` of picket snapshot --json (an incident's) instead of this host; needs --dry-run")
	stateDir := fs.String("state-dir", "", "journal and spool `DIR` (default /var/lib/picket as root, else the XDG state dir)")
	if st, stop := parseFlags(fs, args); stop {
		return st
	}
	cfg, _, err := loadConfig(*cfgPath)
	if err != nil {
		printConfigErrors(stderr, err)
		return 2
	}
	// What check acts on (outputs, kills, execs as root) comes from these
	// files: the daemon's StrictModes hold here too. A dry run changes and
	// sends nothing, so it reads any file; the built-in default is no file.
	if !*dryRun && *cfgPath != "" {
		for _, f := range cfg.Files {
			if err := secpath.File(f); err != nil {
				fmt.Fprintf(stderr, "picket check: %s: refusing a configuration others could change (--dry-run reads it anyway)\n", term.Escape(err.Error()))
				return 2
			}
		}
	}
	nss := procid.HostResolver(*root) // the collector's and the runner's, as in the daemon
	col, err := collect.New(collect.Options{Root: *root, BPFMinFiles: collect.OneShotMinFiles, BPFPinDir: bpfPins(*root), NameService: nss, NoNameService: nss == nil})
	if err != nil {
		fmt.Fprintf(stderr, "picket check: %s\n", term.Escape(err.Error()))
		return 3
	}
	var snap *snapshot.Snapshot
	var cerr error
	if *snapFile != "" {
		// The processes in a saved snapshot are not this host's now: acting
		// on their pids could hit whatever reuses them.
		if !*dryRun {
			fmt.Fprintln(stderr, "picket check: --snapshot needs --dry-run: its pids are not this host's processes now")
			return 2
		}
		snap, err = readSnapshot(*snapFile)
		if err != nil {
			fmt.Fprintf(stderr, "picket check: %s\n", term.Escape(err.Error()))
			return 3
		}
	} else {
		snap, cerr = col.Collect(ctx, collect.Full)
		if snap == nil {
			fmt.Fprintf(stderr, "picket check: %s\n", term.Escape(cerr.Error()))
			return 3
		}
	}
	report := checkReport{Host: snap.Host, DryRun: *dryRun, Alarms: []checkAlarm{}}
	if cerr != nil {
		report.Errors = append(report.Errors, cerr.Error())
	}
	if *hostName != "" {
		report.Host = *hostName
	}
	dr := doctor.Run(doctor.Input{Cur: snap}, doctor.Checks())
	in := &rules.Input{Snapshot: snap}
	for _, f := range dr.Findings {
		in.Findings = append(in.Findings, rules.Finding{ID: f.ID, Severity: f.Severity.String(), Title: f.Title})
	}

	eng := rules.NewEngine(cfg, cfg.Host(report.Host), rules.EngineOptions{IgnoreHysteresis: true})
	events, err := eng.Evaluate(in, eng.Rules())
	if err != nil {
		report.Errors = append(report.Errors, err.Error())
	}
	sd := *stateDir
	if sd == "" {
		sd = act.DefaultStateDir()
	}
	runner, err := act.NewRunner(act.Options{Root: *root, StateDir: sd, DryRun: *dryRun, NameService: nss})
	if err != nil {
		fmt.Fprintf(stderr, "picket check: %s\n", term.Escape(err.Error()))
		return 3
	}
	defer runner.Close()
	if p, ok := cfg.Protect.(*act.Protected); ok && p != nil {
		if unknown := runner.SetProtected(*p); len(unknown) > 0 {
			fmt.Fprintf(stderr, "picket check: protect: users this host does not know are left out: %s\n", term.Escape(strings.Join(unknown, ", ")))
		}
	}
	ruleOf := map[string]*rules.Rule{}
	for _, r := range cfg.Rules {
		ruleOf[r.Name] = r
	}
	env := notify.Env{Hostname: report.Host, StateDir: sd, Stderr: stderr}
	batches := map[string]*alarm.Batch{} // rule + output -> batch: one mail per rule evaluation
	outputs := map[string]rules.OutputRef{}
	var order []string
	for _, ev := range events {
		ca := checkAlarm{Rule: ev.Alarm.Rule, Level: ev.Alarm.Level, Case: ev.Alarm.Case, Row: ev.Alarm.Row,
			Message: ev.Alarm.Message, Outputs: []checkOutput{}, Actions: []act.Result{}}
		report.Errors = append(report.Errors, ev.Errors...)
		for _, a := range ev.Actions {
			if *snapFile != "" {
				// Targets are chosen on a live host (kill re-selects just
				// before each signal); a saved snapshot has none.
				ca.Actions = append(ca.Actions, act.Result{Type: a.Kind, DryRun: true, Targets: []any{},
					Result: "not resolved: replaying a saved snapshot; targets are chosen on the live host"})
				continue
			}
			spec, _ := a.Spec.(act.Spec)
			res := runner.Do(ctx, act.Request{Spec: spec, Host: report.Host, Rule: ev.Alarm.Rule, Case: ev.Alarm.Case,
				Row: ev.Alarm.Row, Snapshot: snap, DryRun: *dryRun || ruleOf[ev.Alarm.Rule].DryRun, Rendered: true})
			ca.Actions = append(ca.Actions, res)
		}
		for _, o := range ev.Outputs {
			ca.Outputs = append(ca.Outputs, checkOutput{Name: o.Name, Kind: o.Kind, DryRun: *dryRun})
			k := ev.Alarm.Rule + "\x00" + o.Name
			b, ok := batches[k]
			if !ok {
				b = &alarm.Batch{Host: report.Host, Rule: ev.Alarm.Rule, Level: ev.Alarm.Level}
				batches[k] = b
				outputs[k] = o
				order = append(order, k)
			}
			b.Alarms = append(b.Alarms, ev.Alarm)
		}
		report.Alarms = append(report.Alarms, ca)
	}
	// Send one batch per rule and output: every matching row in one mail.
	results := map[string]string{}
	for _, k := range order {
		o := outputs[k]
		if *dryRun {
			results[k] = fmt.Sprintf("would send %d alarms", len(batches[k].Alarms))
			continue
		}
		spec, _ := o.Spec.(notify.Spec)
		n, err := notify.New(o.Name, spec, env)
		if err == nil {
			sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			err = n.Notify(sctx, *batches[k])
			cancel()
		}
		if err != nil {
			results[k] = "failed: " + err.Error()
			report.Errors = append(report.Errors, fmt.Sprintf("output %s: %v", o.Name, err))
		} else {
			results[k] = fmt.Sprintf("sent %d alarms", len(batches[k].Alarms))
		}
	}
	for i := range report.Alarms {
		for j := range report.Alarms[i].Outputs {
			o := &report.Alarms[i].Outputs[j]
			o.Result = results[report.Alarms[i].Rule+"\x00"+o.Name]
		}
	}

	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.Encode(report)
	} else {
		printCheck(stdout, stderr, report)
	}
	if !*dryRun {
		// Timed actions (throttles, freezes) end when their Runner closes: a
		// one-shot check keeps running until their time is up, so they last
		// as long as the rule asked. Ctrl-C (or SIGTERM) ends them now.
		if kinds := timedKinds(report); len(kinds) > 0 {
			fmt.Fprintf(stderr, "picket check: holding timed actions (%s) until their time is up (Ctrl-C ends them now)\n", strings.Join(kinds, ", "))
			runner.Wait(ctx)
		}
	}
	if len(report.Alarms) > 0 {
		return 1
	}
	return 0
}

// timedKinds lists the kinds of the actions taken that end by themselves,
// sorted, each once.
func timedKinds(r checkReport) []string {
	seen := map[string]bool{}
	var out []string
	for _, a := range r.Alarms {
		for _, x := range a.Actions {
			if act.Timed(x.Type) && !x.DryRun && x.Error == "" && !seen[x.Type] {
				seen[x.Type] = true
				out = append(out, x.Type)
			}
		}
	}
	sort.Strings(out)
	return out
}

func readSnapshot(path string) (*snapshot.Snapshot, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var s snapshot.Snapshot
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("%s: not a picket snapshot: %w", path, err)
	}
	return &s, nil
}

func printCheck(w, stderr io.Writer, r checkReport) {
	mode := ""
	if r.DryRun {
		mode = " (dry run: nothing sent, nothing changed)"
	}
	fmt.Fprintf(w, "picket check as %s: %d alarms%s\n", term.Escape(r.Host), len(r.Alarms), mode)
	for _, a := range r.Alarms {
		fmt.Fprintf(w, "\n[%s] %s / %s: %s\n", a.Level, a.Rule, a.Case, term.Escape(a.Message))
		keys := make([]string, 0, len(a.Row))
		for k := range a.Row {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var parts []string
		for _, k := range keys {
			parts = append(parts, fmt.Sprintf("%s=%s", k, term.Escape(fmt.Sprint(a.Row[k]))))
		}
		fmt.Fprintf(w, "  row: %s\n", strings.Join(parts, " "))
		for _, o := range a.Outputs {
			fmt.Fprintf(w, "  output %s (%s): %s\n", term.Escape(o.Name), o.Kind, term.Escape(o.Result))
		}
		for _, x := range a.Actions {
			t := ""
			if len(x.Targets) > 0 {
				t = fmt.Sprintf(" targets %v", x.Targets)
				if len(t) > 200 {
					t = t[:200] + "…"
				}
			}
			fmt.Fprintf(w, "  action %s: %s%s\n", x.Type, term.Escape(x.Result), term.Escape(t))
		}
	}
	for _, e := range r.Errors {
		fmt.Fprintf(stderr, "error: %s\n", term.Escape(e))
	}
}
