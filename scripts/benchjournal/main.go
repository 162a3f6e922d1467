// Command benchjournal is the engine of scripts/bench-journal: it writes a
// journal as a rate-limited storm rule leaves it (a rule every second for
// days: a few kills per window, the rest refused), starts `picket run` on
// it, and measures what an administrator waits for: how long the restart
// takes to settle the journal, how long `GET /api/v1/journal?limit=1`
// answers, and how much memory six concurrent journal and snapshot
// requests cost the daemon.
//
// It is a benchmark tool, not part of picket: it starts the picket binaries
// it is given, each on its own copy of the journal, and nothing else.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

func main() {
	lines := flag.Int("lines", 200_000, "journal lines to write")
	rounds := flag.Int("rounds", 3, "restarts per binary (medians are reported)")
	out := flag.String("out", "", "only write the journal to `FILE`")
	flag.Parse()
	if *out != "" {
		if _, err := writeJournal(*out, *lines); err != nil {
			fail(err)
		}
		return
	}
	if flag.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "usage: benchjournal [-lines N] [-rounds N] PICKET-BINARY... | benchjournal [-lines N] -out FILE")
		os.Exit(2)
	}
	tmp, err := os.MkdirTemp("", "picket-journal-bench-")
	if err != nil {
		fail(err)
	}
	defer os.RemoveAll(tmp)
	src := filepath.Join(tmp, "journal.jsonl")
	size, err := writeJournal(src, *lines)
	if err != nil {
		fail(err)
	}
	fmt.Printf("journal: %d lines, %.1f MiB\n\n", *lines, float64(size)/(1<<20))
	// Alternating binaries round by round: the machine's load drifts.
	results := make([][]result, len(flag.Args()))
	for r := 0; r < *rounds; r++ {
		for i, bin := range flag.Args() {
			m, err := measure(bin, src, filepath.Join(tmp, fmt.Sprintf("state-%d-%d", i, r)))
			if err != nil {
				fail(fmt.Errorf("%s: %w", bin, err))
			}
			results[i] = append(results[i], m)
		}
	}
	fmt.Println("| binary | restart until /healthz answers | journal?limit=1 (median of 7) | journal file after | VmHWM after 6 concurrent journal?limit=1000 + 6 snapshot |")
	fmt.Println("|---|---|---|---|---|")
	for i, bin := range flag.Args() {
		var starts, reads []time.Duration
		var hwms []int
		for _, m := range results[i] {
			starts, reads, hwms = append(starts, m.start), append(reads, m.read), append(hwms, m.hwmKiB)
		}
		fmt.Printf("| %s | %v | %v | %.1f MiB | %.1f MiB |\n", filepath.Base(bin), median(starts).Round(time.Millisecond),
			median(reads).Round(100*time.Microsecond), float64(results[i][0].after)/(1<<20), float64(medianInt(hwms))/1024)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "benchjournal:", err)
	os.Exit(1)
}

// entry is a journal line as picket writes it (act.Entry's JSON), spelled
// out here so that one file serves every picket version compared.
type entry struct {
	ID      string         `json:"id"`
	Time    time.Time      `json:"time"`
	Phase   string         `json:"phase"`
	Type    string         `json:"type"`
	Host    string         `json:"host,omitempty"`
	Rule    string         `json:"rule,omitempty"`
	Case    string         `json:"case,omitempty"`
	Spec    map[string]any `json:"spec,omitempty"`
	Row     map[string]any `json:"row,omitempty"`
	Targets []any          `json:"targets,omitempty"`
	Result  string         `json:"result,omitempty"`
	Error   string         `json:"error,omitempty"`
}

// writeJournal writes n lines: per 10 minutes of a rule due every second,
// 10 kills of 100 imapd processes each (intent and result) and a refused
// line (naming 10 of them) for every other evaluation, which is what
// picket wrote before refusals were counted.
func writeJournal(path string, n int) (int64, error) {
	f, err := os.Create(path)
	if err != nil {
		return 0, err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	enc := json.NewEncoder(w)
	t := time.Now().Add(-time.Duration(n) * time.Second).UTC().Truncate(time.Second)
	pids := make([]any, 100)
	for i := range pids {
		pids[i] = 20000 + i
	}
	row := map[string]any{"user": "nobody", "comm": "imapd", "count": 120, "threads": 120, "rss_bytes": 1 << 30}
	spec := map[string]any{"user": "nobody", "comm": "imapd", "signal": "TERM", "grace": 5e9, "then": "KILL"}
	for i := 0; i < n; {
		id := fmt.Sprintf("%s-%06x", t.Format("20060102T150405"), i&0xffffff)
		base := entry{ID: id, Time: t, Type: "kill", Host: "moscow", Rule: "imapd-storm", Case: "imapd"}
		if s := int(t.Unix() % 600); s < 10 {
			in, res := base, base
			in.Phase, in.Spec, in.Row, in.Targets = "intent", spec, row, pids
			res.Phase, res.Targets, res.Result = "result", pids, "killed 100 (TERM)"
			if err := enc.Encode(in); err != nil {
				return 0, err
			}
			if err := enc.Encode(res); err != nil {
				return 0, err
			}
			i += 2
		} else {
			e := base
			e.Phase, e.Targets, e.Result = "refused", pids[:10], "rate-limited"
			e.Error = "rate-limited: rule imapd-storm took 10 actions within 10m0s; acting again after " + t.Add(time.Minute).Format(time.RFC3339)
			if err := enc.Encode(e); err != nil {
				return 0, err
			}
			i++
		}
		t = t.Add(time.Second)
	}
	if err := w.Flush(); err != nil {
		return 0, err
	}
	fi, err := f.Stat()
	if err != nil {
		return 0, err
	}
	return fi.Size(), f.Close()
}

type result struct {
	start  time.Duration // exec until /healthz answers
	read   time.Duration // median of 7 sequential ?limit=1
	hwmKiB int           // VmHWM after the concurrent requests
	after  int64         // journal size once the daemon settled it
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func copyFile(dst, src string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

func measure(bin, journal, state string) (result, error) {
	var m result
	if err := os.MkdirAll(state, 0o700); err != nil {
		return m, err
	}
	if err := copyFile(filepath.Join(state, "journal.jsonl"), journal); err != nil {
		return m, err
	}
	exec.Command("sync").Run()
	port, err := freePort()
	if err != nil {
		return m, err
	}
	base := "http://127.0.0.1:" + strconv.Itoa(port)
	cmd := exec.Command(bin, "run", "--state-dir", state, "--listen", "127.0.0.1:"+strconv.Itoa(port), "--interval", "1m")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		return m, err
	}
	defer func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() }()
	client := &http.Client{Timeout: 5 * time.Minute}
	get := func(path string) (int, error) {
		resp, err := client.Get(base + path)
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		_, err = io.Copy(io.Discard, resp.Body)
		return resp.StatusCode, err
	}
	// The journal is settled before the first look, and /healthz answers
	// after it: the time to a 200 is the restart's.
	for {
		if code, _ := get("/healthz"); code == 200 {
			break
		}
		if time.Since(t0) > 10*time.Minute {
			return m, fmt.Errorf("no answer within 10 minutes:\n%s", stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	m.start = time.Since(t0)
	var reads []time.Duration
	for i := 0; i < 7; i++ {
		t := time.Now()
		if code, err := get("/api/v1/journal?limit=1"); code != 200 {
			return m, fmt.Errorf("journal?limit=1: %d %v", code, err)
		}
		reads = append(reads, time.Since(t))
	}
	m.read = median(reads)
	var wg sync.WaitGroup
	for i := 0; i < 6; i++ {
		wg.Add(2)
		go func() { defer wg.Done(); get("/api/v1/journal?limit=1000") }()
		go func() { defer wg.Done(); get("/api/v1/snapshot") }()
	}
	wg.Wait()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", cmd.Process.Pid))
	if err != nil {
		return m, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			m.hwmKiB, _ = strconv.Atoi(strings.Fields(v)[0])
		}
	}
	if fi, err := os.Stat(filepath.Join(state, "journal.jsonl")); err == nil {
		m.after = fi.Size()
	}
	return m, nil
}

func median(ds []time.Duration) time.Duration {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

func medianInt(xs []int) int {
	s := append([]int(nil), xs...)
	sort.Ints(s)
	return s[len(s)/2]
}
