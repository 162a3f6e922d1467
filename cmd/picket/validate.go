package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/picket-guard/picket/internal/daemon"
	"github.com/picket-guard/picket/internal/hostcap"
	"github.com/picket-guard/picket/internal/rules"
	"github.com/picket-guard/picket/internal/term"
)

func runValidate(_ context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("validate", `Check configuration files without running anything: unknown keys, fields,
outputs, macros, levels, expressions and templates. Prints one summary line
per file, or every mistake as FILE:LINE:COL: message, and exits 1.
With no FILE, validates the built-in default configuration.

  picket validate [--host NAME | --all-hosts] [FILE...]

--host NAME prints the rules, thresholds and actions as that host sees them
(PIKT's preprocessor output), to review a fleet's config host by host.

--all-hosts checks each file as every host it names sees it, one host for
each glob in it (web-* as web-x) and a host it names nowhere: a vars.NAME
with no value for a host, or whose value's type does not fit where it is
used on that host, is reported as FILE:LINE:COL: host NAME: message. For a
config repository's CI: the file is wrong for a host before it reaches it.

Each file is also held against this host (the probe of picket version
--features): an action kind it uses that this host cannot take (throttle
without nftables or CAP_NET_ADMIN, sysctl on a read-only /proc/sys) is
reported as FILE: refused: ... and exits 1; what works only narrower (kill
without CAP_KILL) as FILE: limited: .... --no-host skips this, for a file
checked on another machine than the one it will run on.`, stdout, stderr)
	host := fs.String("host", "", "print the configuration as host `NAME` sees it")
	allHosts := fs.Bool("all-hosts", false, "check the configuration as every host named in it sees it (and a host named nowhere)")
	noHost := fs.Bool("no-host", false, "do not hold the actions the configuration uses against this host's features and capabilities")
	if err := fs.Parse(args); errors.Is(err, flag.ErrHelp) {
		return 0
	} else if err != nil {
		return 2
	}
	files := fs.Args()
	if len(files) == 0 {
		files = []string{""}
	}
	status := 0
	var probe *hostcap.Set
	for _, f := range files {
		cfg, name, err := loadConfig(f)
		if err != nil {
			printConfigErrors(stderr, err)
			status = 1
			continue
		}
		active := 0
		for _, r := range cfg.Rules {
			if r.Active {
				active++
			}
		}
		if *allHosts {
			views, errs := cfg.CheckAllHosts()
			var as []string
			for _, h := range views {
				as = append(as, h.As)
			}
			for _, e := range errs {
				printConfigErrors(stderr, e)
			}
			if len(errs) > 0 {
				status = 1
				continue
			}
			fmt.Fprintf(stdout, "%s: ok as %s\n", term.Escape(name), term.Escape(strings.Join(as, ", ")))
		}
		fmt.Fprintf(stdout, "%s: ok: %d rules (%d active), %d outputs, %d macros, %d files\n",
			term.Escape(name), len(cfg.Rules), active, len(cfg.Outputs), len(cfg.Macros), len(cfg.Files))
		if !*noHost {
			if probe == nil {
				probe = hostcap.Probe(hostcap.Options{})
			}
			rep := daemon.HostCheck(cfg, probe)
			for _, l := range rep.Lines() {
				fmt.Fprintf(stderr, "%s: %s\n", term.Escape(name), term.Escape(l))
			}
			if len(rep.Refused) > 0 {
				status = 1
			}
		}
		if *host != "" {
			if err := cfg.Describe(stdout, cfg.Host(*host)); err != nil {
				return 1
			}
		}
	}
	return status
}

// printConfigErrors prints each mistake of a configuration on a line of its
// own, escaped one by one: escaping the joined list would turn the newlines
// between them into a literal \n and the list into one long line.
func printConfigErrors(w io.Writer, err error) {
	var list rules.ErrorList
	if errors.As(err, &list) {
		for _, e := range list {
			fmt.Fprintln(w, term.Escape(e.Error()))
		}
		return
	}
	fmt.Fprintln(w, term.Escape(err.Error()))
}
