// Command picket is a host guard for Linux servers: it sees every process and
// socket against the kernel's limits, explains exhaustions, watches rules and
// acts. main only wires flags to the internal packages.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"sort"
	"syscall"
	"time"

	"github.com/picket-guard/picket/internal/hostcap"
)

// version and commit are set by the package build:
//
//	go build -ldflags "-X main.version=0.1.0 -X main.commit=$(git rev-parse HEAD)"
//
// A plain go build leaves version "dev" and takes the commit from the VCS
// stamp the go command embeds (runtime/debug.ReadBuildInfo, vcs.revision).
var (
	version = "dev"
	commit  = ""
)

// command is one subcommand. run returns the process exit status; operands
// names what follows the flags, for the usage line and the man page.
type command struct {
	summary  string
	operands string
	run      func(ctx context.Context, args []string, stdout, stderr io.Writer) int
}

func commands() map[string]command {
	return map[string]command{
		"run":      {"watch this host: rules on schedule, history, /metrics and API, notify and act", "", runRun},
		"snapshot": {"print processes, sockets and the kernel's limits (--json for the full object)", "", runSnapshot},
		"top":      {"live full-screen view of limits, process groups and socket holders (--once: one plain frame)", "", runTop},
		"doctor":   {"name the exhaustion, show the kernel's evidence, give the fix (Nagios exit codes; --check ID: one check as a plugin)", "", runDoctor},
		"validate": {"check configuration files; --host NAME shows them as that host sees them, --all-hosts checks every host", "[FILE...]", runValidate},
		"check":    {"evaluate every rule once now and send/act (or --dry-run: say what would happen)", "", runCheck},
		"history":  {"print a series picket run keeps: orphans, limits, PSI, crowds, socket holders (--list, --json)", "[SERIES | --list [PREFIX]]", runHistory},
		"journal":  {"list the actions picket took and whether they are still in force (--json)", "", runJournal},
		"undo":     {"revert an action by its journal ID (throttle, freeze, sysctl)", "ID", runUndo},
		"version":  {"print picket's version and the commit it was built from (--features: what this host's kernel and picket's privileges allow)", "", runVersion},
		"generate": {"write the man page and the bash completion, made from these commands' flags (for packagers)", "", runGenerate},
	}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cmds := commands()
	if len(args) > 0 && (args[0] == "--version" || args[0] == "-version") {
		args[0] = "version"
	}
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" || args[0] == "-help" {
		if len(args) > 1 {
			if c, ok := cmds[args[1]]; ok {
				return c.run(ctx, []string{"--help"}, stdout, stderr)
			}
		}
		usage(stdout, cmds)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	c, ok := cmds[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "picket: unknown command %q\n\n", args[0])
		usage(stderr, cmds)
		return 2
	}
	return c.run(ctx, args[1:], stdout, stderr)
}

func usage(w io.Writer, cmds map[string]command) {
	fmt.Fprintf(w, "picket: a host guard for Linux servers\n\nUsage: picket COMMAND [flags]\n\nCommands:\n")
	names := make([]string, 0, len(cmds))
	for n := range cmds {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-10s %s\n", n, cmds[n].summary)
	}
	fmt.Fprintf(w, "\nRun 'picket COMMAND --help' for a command's flags.\n")
}

// newFlags makes a FlagSet that prints its usage to stdout on --help and
// reports bad flags on stderr, the way every picket command behaves. When
// stdout is a helpSink, --help hands it the flags instead: the man page and
// the completion are made from the very definitions --help prints.
func newFlags(name, synopsis string, stdout, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		if s, ok := stdout.(helpSink); ok {
			s.describe(name, synopsis, fs)
			return
		}
		fmt.Fprintf(stdout, "Usage: %s\n\n%s\n\nFlags:\n", usageLine(name), synopsis)
		fs.SetOutput(stdout)
		fs.PrintDefaults()
		fs.SetOutput(stderr)
	}
	return fs
}

// usageLine is "picket NAME [flags] OPERANDS".
func usageLine(name string) string {
	l := "picket " + name + " [flags]"
	if ops := commands()[name].operands; ops != "" {
		l += " " + ops
	}
	return l
}

// parseFlags parses args; it returns (status, true) when the command should
// stop: 0 after --help, 2 after a bad flag.
func parseFlags(fs *flag.FlagSet, args []string) (int, bool) {
	err := fs.Parse(args)
	if errors.Is(err, flag.ErrHelp) {
		return 0, true
	}
	if err != nil {
		return 2, true
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(fs.Output(), "picket %s: unexpected argument %q\n", fs.Name(), fs.Arg(0))
		return 2, true
	}
	return 0, false
}

// build is what the binary knows of how it was built.
type build struct {
	Version  string
	Commit   string
	Time     time.Time // the commit's time, from the VCS stamp
	Modified bool      // built from a work tree with uncommitted changes
	Go       string
}

func buildInfo() build {
	b := build{Version: version, Commit: commit, Go: runtime.Version()}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return b
	}
	// Since Go 1.24 a build in a git checkout has a pseudo-version
	// (v0.0.0-20261201201058-861ce9a9dea7+dirty): better than "dev".
	if b.Version == "dev" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		b.Version = bi.Main.Version
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			if b.Commit == "" {
				b.Commit = s.Value
			}
		case "vcs.time":
			b.Time, _ = time.Parse(time.RFC3339, s.Value)
		case "vcs.modified":
			b.Modified = s.Value == "true" && commit == ""
		}
	}
	return b
}

func (b build) String() string {
	s := "picket " + b.Version
	if b.Commit != "" {
		s += " commit " + b.Commit
		if b.Modified {
			s += " (modified)"
		}
	}
	return s + fmt.Sprintf(" %s %s/%s", b.Go, runtime.GOOS, runtime.GOARCH)
}

func runVersion(_ context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("version", `Print picket's version, the commit it was built from and the Go that built it.

--features also probes this host as picket run does at start: each kernel
feature picket leans on, found or not, the first kernel that has it and what
picket does instead; the capabilities it holds; the container it runs in.
With --root DIR only the tree's files are probed (PSI, MemAvailable,
cgroups, the container's marks).`, stdout, stderr)
	features := fs.Bool("features", false, "probe this host's kernel features and capabilities and say what picket does without each")
	root := fs.String("root", "/", "with --features, probe the files of `DIR` as if it were /")
	asJSON := fs.Bool("json", false, "with --features, print the probe as JSON")
	if st, stop := parseFlags(fs, args); stop {
		return st
	}
	fmt.Fprintln(stdout, buildInfo())
	if !*features {
		return 0
	}
	h := hostcap.Probe(hostcap.Options{Root: *root})
	if *asJSON {
		out := struct {
			*hostcap.Set
			Features     []hostcap.Feature `json:"features"`
			Capabilities map[string]bool   `json:"capabilities"`
		}{h, h.Features(), h.CapMap()}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(out); err != nil {
			return 1
		}
		return 0
	}
	fmt.Fprintln(stdout)
	h.WriteText(stdout)
	return 0
}
