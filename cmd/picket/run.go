package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/picket-guard/picket/internal/daemon"
	"github.com/picket-guard/picket/internal/forecast"
	"github.com/picket-guard/picket/internal/term"
)

func runRun(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("run", `Watch this host: collect on the rules' schedules, evaluate them, keep
history, serve /metrics and the API, notify and act. With no --config, the
built-in default runs picket doctor's checks and reports to stderr and the
log, taking no action. SIGHUP reloads the configuration (a bad one is
refused and the running one stays) and reopens the log; SIGTERM stops
cleanly.`, stdout, stderr)
	cfg := fs.String("config", "", "configuration `FILE` (default: the built-in one)")
	stateDir := fs.String("state-dir", "", "history, journal, spool and log `DIR` (default /var/lib/picket as root, else the XDG state dir)")
	listen := fs.String("listen", "127.0.0.1:9749", "HTTP `ADDR` for /metrics, the API and the dashboard (\"off\" for none)")
	token := fs.String("token-file", "", "`FILE` holding the bearer token for mutating endpoints, and for the private API to anyone but root (required to listen beyond loopback; docs/api.md)")
	host := fs.String("host", "", "evaluate rules as if this host were called `NAME`")
	root := fs.String("root", "/", "read `DIR`/proc as if DIR were / (a fixture tree; nothing is protected or acted on for real)")
	interval := fs.Duration("interval", time.Minute, "longest time between two collections, whatever the rules' schedules (each full look costs ~0.1–0.4 s of CPU on a 3,000-process host)")
	dryRun := fs.Bool("dry-run", false, "take no action: journal and log what would be done")
	oom := fs.Int("oom-score-adj", -1000, "picket's own oom_score_adj (-1000: never chosen by the OOM killer)")
	spoolItems := fs.Int("spool-max-items", 1000, "undelivered notification batches the spool keeps at most; past it the oldest are dropped (and counted in picket_spool_dropped_total)")
	minSpan := fs.Duration("forecast-min-span", 10*time.Minute, "shortest rising trend that gets a time-to-exhaustion forecast (docs/forecast.md); shorter trends are noise more often than not")
	spoolBytes := fs.Int64("spool-max-bytes", 32<<20, "bytes the spool keeps at most; past it the oldest batches are dropped")
	if st, stop := parseFlags(fs, args); stop {
		return st
	}
	d, err := daemon.New(daemon.Options{ConfigPath: *cfg, LoadConfig: loadConfig, Root: *root, StateDir: *stateDir,
		Listen: *listen, TokenFile: *token, Host: *host, Interval: *interval, OOMScoreAdj: oom, DryRun: *dryRun,
		SpoolMaxItems: *spoolItems, SpoolMaxBytes: *spoolBytes, Forecast: forecast.Options{MinSpan: *minSpan}, Stderr: stderr, Version: version,
		BPFPinDir: bpfPins(*root)})
	if err != nil {
		fmt.Fprintf(stderr, "picket run: %s\n", term.Escape(err.Error()))
		return 1
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	reload := make(chan struct{}, 1)
	go func() {
		for range hup {
			select {
			case reload <- struct{}{}:
			default:
			}
		}
	}()
	if err := d.Run(ctx, reload); err != nil {
		fmt.Fprintf(stderr, "picket run: %s\n", term.Escape(err.Error()))
		return 1
	}
	return 0
}
