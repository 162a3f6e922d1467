package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/picket-guard/picket/internal/term"
)

func runValidate(_ context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("validate", `Check configuration files without running anything: unknown keys, fields,
outputs, macros, levels, expressions and templates. Prints one summary line
per file, or every mistake as FILE:LINE:COL: message, and exits 1.
With no FILE, validates the built-in default configuration.

  picket validate [--host NAME] [FILE...]

--host NAME prints the rules, thresholds and actions as that host sees them
(PIKT's preprocessor output), to review a fleet's config host by host.`, stdout, stderr)
	host := fs.String("host", "", "print the configuration as host `NAME` sees it")
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
	for _, f := range files {
		cfg, name, err := loadConfig(f)
		if err != nil {
			fmt.Fprintln(stderr, term.Escape(err.Error()))
			status = 1
			continue
		}
		active := 0
		for _, r := range cfg.Rules {
			if r.Active {
				active++
			}
		}
		fmt.Fprintf(stdout, "%s: ok: %d rules (%d active), %d outputs, %d macros, %d files\n",
			term.Escape(name), len(cfg.Rules), active, len(cfg.Outputs), len(cfg.Macros), len(cfg.Files))
		if *host != "" {
			if err := cfg.Describe(stdout, cfg.Host(*host)); err != nil {
				return 1
			}
		}
	}
	return status
}
