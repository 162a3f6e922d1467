package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"github.com/picket-guard/picket/internal/secpath"
	"github.com/picket-guard/picket/internal/term"
	"github.com/picket-guard/picket/internal/tui"
)

const topSynopsis = `A live view of what is growing toward which kernel limit: each limit as a
bar (tcp orphans, TCP memory, open files, pids, threads, conntrack,
beancounters near their barrier), the doctor's worst verdict, the heaviest
user × command groups and the heaviest socket holders, with their change
since the last refresh.

It collects this host itself (no daemon needed), or with --from reads a
running picket's API. When stdout is not a terminal, or with --once, it
prints one plain-text frame and exits 0; with an --interval the frame is
taken from two samples that far apart, so CHANGE has something to measure.`

func runTop(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("top", topSynopsis+"\n\n"+tui.KeyHelp, stdout, stderr)
	interval := fs.Duration("interval", time.Second, "time between refreshes; with --once, between the two samples (0: one sample, CHANGE blank)")
	root := fs.String("root", "/", "read `DIR`/proc and DIR/etc as if DIR were / (a fixture tree); the live system is not touched")
	from := fs.String("from", "", "read a running picket's API at `URL` (such as http://127.0.0.1:9749) instead of collecting")
	tokenFile := fs.String("token-file", "", "with --from, send the token in `FILE` (picket run's --token-file): needed by anyone but root on the daemon's host")
	once := fs.Bool("once", false, "print one plain-text frame and exit")
	top := fs.Int("top", 0, "at most `N` rows per table (0: as many as fit the screen; 10 in plain text)")
	width := fs.Int("width", 0, "plain-text frame width in `COLUMNS` (0: the terminal's, or 80)")
	if st, stop := parseFlags(fs, args); stop {
		return st
	}
	fail := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "picket top: "+format+"\n", a...)
		return 1
	}
	usage := func(format string, a ...any) int {
		fail(format, a...)
		return 2
	}
	rootSet := false
	fs.Visit(func(f *flag.Flag) { rootSet = rootSet || f.Name == "root" })
	switch {
	case *interval < 0:
		return usage("--interval %s: want 0 or more", *interval)
	case *top < 0:
		return usage("--top %d: want 0 or more", *top)
	case *width < 0:
		return usage("--width %d: want 0 or more", *width)
	case *from != "" && rootSet:
		return usage("--from and --root: choose one (the daemon reads its own root)")
	case *tokenFile != "" && *from == "":
		return usage("--token-file: only with --from (collecting here needs no token)")
	}

	var src tui.Source
	if *from != "" {
		d, err := tui.NewDaemon(*from, nil)
		if err != nil {
			return fail("%s", term.Escape(err.Error()))
		}
		d.Top = *top
		if *tokenFile != "" {
			if d.Token, err = readClientToken(*tokenFile); err != nil {
				return fail("%s", term.Escape(err.Error()))
			}
		}
		src = d
	} else {
		c, err := tui.NewCollecting(*root, *interval)
		if err != nil {
			return fail("%s", term.Escape(err.Error()))
		}
		src = c
	}
	opts := tui.Options{Source: src, Interval: *interval, Top: *top, Env: os.Environ()}

	out, tty := terminal(stdout)
	var in *os.File
	if tty && !*once {
		if *interval == 0 {
			return usage("--interval 0: the live view needs a refresh interval (or use --once)")
		}
		in = os.Stdin
		if _, ok := terminal(in); !ok {
			// Keys come from the terminal even when stdin is a pipe.
			f, err := os.Open("/dev/tty")
			if err != nil {
				tty = false
			} else {
				defer f.Close()
				in = f
			}
		}
	}
	if *once || !tty {
		w := *width
		if w == 0 {
			w = 80
			if tty {
				if ws, err := unix.IoctlGetWinsize(int(out.Fd()), unix.TIOCGWINSZ); err == nil && ws.Col > 0 {
					w = int(ws.Col)
				}
			}
		}
		if err := tui.WriteOnce(ctx, stdout, opts, w); err != nil {
			return fail("%s", term.Escape(err.Error()))
		}
		return 0
	}
	if err := tui.Run(ctx, opts, in, out); err != nil && ctx.Err() == nil {
		return fail("%s", term.Escape(err.Error()))
	}
	return 0
}

// terminal returns w as a file when it is a terminal.
func terminal(w any) (*os.File, bool) {
	f, ok := w.(*os.File)
	if !ok || f == nil {
		return nil, false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return f, err == nil
}

// readClientToken reads the token a client sends, checked as the daemon
// checks its own (secpath.Token): like ssh with a private key, a file that
// group or others may read is refused.
func readClientToken(path string) (string, error) {
	tok, err := secpath.Token(path, 0)
	if err != nil {
		return "", fmt.Errorf("--token-file: %w", err)
	}
	return tok, nil
}
