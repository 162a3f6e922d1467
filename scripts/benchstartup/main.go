// Command benchstartup is the engine of scripts/bench-startup: it runs
// picket builds' one-shot commands (picket version by default) many times,
// alternating between the builds, and prints per build the median wall
// time, peak RSS and minor faults (wait4's rusage) and the sum of the
// package initialisers' clock (GODEBUG=inittrace=1), with each build's
// ratio to the first. Single runs on a shared 2-CPU machine are noise; the
// medians of alternating runs are not.
//
// It is a benchmark tool, not part of picket: it runs the binaries it is
// given with the fixed arguments of -args, never through a shell.
package main

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	runs := flag.Int("runs", 50, "runs of each build")
	args := flag.String("args", "version", "picket's arguments (space-separated)")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: benchstartup [-runs N] [-args 'snapshot --json'] PICKET [PICKET...]")
		flag.PrintDefaults()
	}
	flag.Parse()
	bins := flag.Args()
	if len(bins) == 0 {
		flag.Usage()
		os.Exit(2)
	}
	type stats struct{ wall, rss, faults, inits []float64 }
	res := make([]stats, len(bins))
	argv := strings.Fields(*args)
	for i := 0; i < *runs; i++ {
		for j, bin := range bins {
			// Every other round also traces the initialisers: the trace
			// itself costs a little, so it is not in the timed runs.
			wall, rss, faults, err := run(bin, argv, nil)
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(1)
			}
			res[j].wall = append(res[j].wall, wall)
			res[j].rss = append(res[j].rss, rss)
			res[j].faults = append(res[j].faults, faults)
			var trace bytes.Buffer
			if _, _, _, err := run(bin, argv, &trace); err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(1)
			}
			res[j].inits = append(res[j].inits, initMillis(&trace))
		}
	}
	fmt.Printf("picket %s, %d alternating runs of each build (medians)\n\n", *args, *runs)
	fmt.Println("| build | wall | peak RSS | minor faults | initialisers | wall ratio | RSS ratio | init ratio |")
	fmt.Println("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
	base := res[0]
	for j, bin := range bins {
		r := res[j]
		fmt.Printf("| %s | %.1f ms | %.1f MiB | %.0f | %.1f ms | %.3f | %.3f | %.3f |\n", bin,
			median(r.wall), median(r.rss)/1024, median(r.faults), median(r.inits),
			median(r.wall)/median(base.wall), median(r.rss)/median(base.rss), median(r.inits)/median(base.inits))
	}
}

// run execs bin once and returns its wall time (ms), peak RSS (KiB) and
// minor faults; with trace set, it runs under GODEBUG=inittrace=1 and
// keeps its stderr there.
func run(bin string, args []string, trace *bytes.Buffer) (wall, rss, faults float64, err error) {
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "GODEBUG=")
	if trace != nil {
		cmd.Env = append(os.Environ(), "GODEBUG=inittrace=1")
		cmd.Stderr = trace
	}
	start := time.Now()
	if err := cmd.Run(); err != nil {
		return 0, 0, 0, fmt.Errorf("%s %s: %w", bin, strings.Join(args, " "), err)
	}
	wall = float64(time.Since(start).Microseconds()) / 1000
	ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	return wall, float64(ru.Maxrss), float64(ru.Minflt), nil
}

// initMillis sums the clock of every "init PKG @T ms, N ms clock, ..." line.
func initMillis(trace *bytes.Buffer) float64 {
	sum := 0.0
	sc := bufio.NewScanner(trace)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) >= 7 && f[0] == "init" && f[6] == "clock," {
			if v, err := strconv.ParseFloat(f[4], 64); err == nil {
				sum += v
			}
		}
	}
	return sum
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	return s[len(s)/2]
}
