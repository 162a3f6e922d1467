package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"math"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/picket-guard/picket/internal/snapshot"
	"github.com/picket-guard/picket/internal/testkit"
	"github.com/picket-guard/picket/internal/testkit/hold"
)

// leakFDLimit is the leaking helper's RLIMIT_NOFILE, leakEvery how often it
// opens a socket: the limit is reached in about 100 s.
const (
	leakFDLimit = 2000
	leakEvery   = 50 * time.Millisecond
)

// udpLeak is the leaking helper: it lowers its RLIMIT_NOFILE to
// leakFDLimit, says "ready", opens an unbound UDP socket every leakEvery
// until socket() fails with EMFILE, says "full UNIXNANO" and holds what it
// has until stdin closes.
func udpLeak() int {
	os.WriteFile("/proc/self/comm", []byte("pkt-leak"), 0)
	var lim unix.Rlimit
	unix.Getrlimit(unix.RLIMIT_NOFILE, &lim)
	lim.Cur = leakFDLimit
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		fmt.Println("setrlimit:", err)
		return 1
	}
	fmt.Println("ready")
	tick := time.NewTicker(leakEvery)
	defer tick.Stop()
	for range tick.C {
		if _, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0); err != nil {
			fmt.Printf("full %d %v\n", time.Now().UnixNano(), err)
			break
		}
	}
	var b [1]byte
	os.Stdin.Read(b[:])
	return 0
}

// udpSawtooth is a holder whose sockets climb and fall back, as a service
// restarted by cron: an unbound UDP socket every 100 ms up to 150 (a tooth
// of 15 s, under the churn test's 20 s shortest trend), then every one
// closed, again and again until stdin closes.
func udpSawtooth() int {
	os.WriteFile("/proc/self/comm", []byte("pkt-sawtooth"), 0)
	// Its teeth reach 40 % of its RLIMIT_NOFILE, above the forecast's
	// floor: what stays quiet is the method, not the floor.
	var lim unix.Rlimit
	unix.Getrlimit(unix.RLIMIT_NOFILE, &lim)
	lim.Cur = 400
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		fmt.Println("setrlimit:", err)
		return 1
	}
	closed := make(chan struct{})
	go func() {
		var b [1]byte
		os.Stdin.Read(b[:])
		close(closed)
	}()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var fds []int
	for {
		select {
		case <-closed:
			return 0
		case <-tick.C:
		}
		if len(fds) >= 150 {
			for _, fd := range fds {
				unix.Close(fd)
			}
			fds = fds[:0]
			continue
		}
		if fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0); err == nil {
			fds = append(fds, fd)
		}
	}
}

// snapshotOf fetches the daemon's latest snapshot.
func (d *daemonProc) snapshotOf() *snapshot.Snapshot {
	code, b := d.get("/api/v1/snapshot")
	if code != 200 {
		return nil
	}
	var s snapshot.Snapshot
	if json.Unmarshal(b, &s) != nil {
		return nil
	}
	return &s
}

func fdForecast(s *snapshot.Snapshot, pid int) (snapshot.Forecast, bool) {
	for _, f := range s.Forecasts {
		if f.Limit == "RLIMIT_NOFILE" && f.PID == pid {
			return f, true
		}
	}
	return snapshot.Forecast{}, false
}

func countFDs(pid int) int {
	ents, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/fd")
	if err != nil {
		return -1
	}
	return len(ents)
}

// TestRunForecastsALeak: a process opens a UDP socket every 50 ms under an
// RLIMIT_NOFILE of 2,000 while picket run watches every second. The
// forecast picket makes when the process is 40 % of the way there is
// within ±20 % of when it actually hits the limit; a bystander holding
// 1,500 sockets under the same limit, steadily, gets no ETA.
func TestRunForecastsALeak(t *testing.T) {
	dir := t.TempDir()
	d := startDaemon(t, "--state-dir", dir, "--interval", "1s", "--forecast-min-span", "20s")

	steady := testkit.StartSockets(t, hold.Spec{Comm: "pkt-steady", UDPUnbound: 1500}, nil)
	lim := unix.Rlimit{Cur: leakFDLimit, Max: leakFDLimit}
	if err := unix.Prlimit(steady.Process.Pid, unix.RLIMIT_NOFILE, &lim, nil); err != nil {
		t.Fatalf("prlimit the bystander: %v", err)
	}

	leak := testkit.HelperCommand("udp-leak")
	stdin, err := leak.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := leak.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := leak.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stdin.Close(); leak.Process.Kill(); leak.Wait() })
	lines := bufio.NewScanner(out)
	if !lines.Scan() || lines.Text() != "ready" {
		t.Fatalf("leaker: %q", lines.Text())
	}
	hit := make(chan time.Time, 1)
	go func() {
		for lines.Scan() {
			if f := strings.Fields(lines.Text()); len(f) >= 2 && f[0] == "full" {
				n, _ := strconv.ParseInt(f[1], 10, 64)
				hit <- time.Unix(0, n)
				return
			}
		}
	}()
	pid := leak.Process.Pid
	start := time.Now()

	// The forecast made at 40 % of the way: the first snapshot taken after
	// the leaker's fds passed 800.
	var at *snapshot.Snapshot
	var f snapshot.Forecast
	d.waitFor("the leaker at 40% of its limit", 70*time.Second, func() bool {
		if countFDs(pid) < leakFDLimit*4/10 {
			return false
		}
		s := d.snapshotOf()
		if s == nil || s.Time.Before(time.Now().Add(-2*time.Second)) {
			return false
		}
		if fc, ok := fdForecast(s, pid); ok {
			for _, p := range s.Processes.List {
				if p.PID == pid && p.FDs >= leakFDLimit*4/10 {
					at, f = s, fc
					return true
				}
			}
		}
		if time.Since(start) > 55*time.Second {
			t.Fatalf("no forecast for the leaker at %d fds: %+v", countFDs(pid), s.Forecasts)
		}
		return false
	})
	if _, ok := fdForecast(at, steady.Process.Pid); ok {
		t.Errorf("the steady bystander has an ETA: %+v", at.Forecasts)
	}
	// The forecast names the look it was fitted at and the history series
	// it was fitted from, which the daemon serves (the dashboard draws
	// the projection there).
	if !f.At.Equal(at.Time) || !strings.HasPrefix(f.Series, "holder/"+strconv.Itoa(pid)+"@") || !strings.HasSuffix(f.Series, "/pkt-leak/fds") {
		t.Errorf("forecast at %v on series %q; want the snapshot's time %v and the leaker's fds", f.At, f.Series, at.Time)
	} else if code, b := d.get("/api/v1/history?series=" + url.QueryEscape(f.Series) + "&since=5m"); code != 200 || !strings.Contains(string(b), `"points":[{`) {
		t.Errorf("history of %q: %d %.200s", f.Series, code, b)
	}
	_, metrics := d.get("/metrics")
	var eta []string
	for _, l := range strings.Split(string(metrics), "\n") {
		if strings.HasPrefix(l, "picket_limit_exhaustion_seconds{") {
			eta = append(eta, l)
		}
	}
	all := strings.Join(eta, "\n")
	if !strings.Contains(all, fmt.Sprintf(`limit="RLIMIT_NOFILE",pid="%d"`, pid)) {
		t.Errorf("no picket_limit_exhaustion_seconds for the leaker:\n%s", all)
	}
	if strings.Contains(all, fmt.Sprintf(`pid="%d"`, steady.Process.Pid)) {
		t.Errorf("a picket_limit_exhaustion_seconds for the bystander:\n%s", all)
	}
	_, findings := d.get("/api/v1/findings")
	if !strings.Contains(string(findings), "pkt-leak (pid "+strconv.Itoa(pid)+") out of fds") {
		t.Errorf("exhaustion-forecast does not name the leaker: %s", findings)
	}

	var when time.Time
	select {
	case when = <-hit:
	case <-time.After(90 * time.Second):
		t.Fatalf("the leaker never hit its limit (%d fds)", countFDs(pid))
	}
	actual := when.Sub(at.Time).Seconds()
	off := math.Abs(f.ETASeconds-actual) / actual
	t.Logf("at %.0f%% (%v fds, %.0fs in): forecast %.0fs at %.1f fds/s over %.0fs (%d looks, R² %.3f); hit the limit %.1fs later: off by %.1f%%",
		100*f.Used/f.Max, f.Used, at.Time.Sub(start).Seconds(), f.ETASeconds, f.RatePerSecond, f.WindowSeconds, f.Samples, f.Quality, actual, off*100)
	if off > 0.2 {
		t.Errorf("forecast %.0fs, actual %.1fs: off by %.0f%%, want within 20%%", f.ETASeconds, actual, off*100)
	}
	// After it: the bystander never got an ETA.
	if s := d.snapshotOf(); s != nil {
		if _, ok := fdForecast(s, steady.Process.Pid); ok {
			t.Errorf("the steady bystander has an ETA: %+v", s.Forecasts)
		}
	}
}

// TestRunNoForecastOnChurn: a healthy host on the default configuration,
// with ordinary churn (waves of short-lived processes, a holder that opens
// 300 sockets, keeps them a few seconds and closes them, again and again),
// watched every second for a minute with the shortest trend cut to 20 s
// (thirty times more eager than the default), beside a holder whose
// sockets climb and fall back (a sawtooth) and one that holds 200 sockets
// (flat): no forecast, and exhaustion-forecast stays ok.
// PICKET_FORECAST_WATCH=10m watches longer, by hand (not in CI).
func TestRunNoForecastOnChurn(t *testing.T) {
	watch := 60 * time.Second
	if v := os.Getenv("PICKET_FORECAST_WATCH"); v != "" {
		var err error
		if watch, err = time.ParseDuration(v); err != nil {
			t.Fatalf("PICKET_FORECAST_WATCH: %v", err)
		}
	}
	dir := t.TempDir()
	d := startDaemon(t, "--state-dir", dir, "--interval", "1s", "--forecast-min-span", "20s")
	testkit.StartSockets(t, hold.Spec{Comm: "pkt-flat", UDPUnbound: 200}, nil)
	saw := testkit.HelperCommand("udp-sawtooth")
	sawIn, err := saw.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := saw.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		sawIn.Close()
		saw.Wait()
	})
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			// A wave of 5–25 short-lived processes, as a build forks.
			var wave []*exec.Cmd
			for range 5 + (i*7)%21 {
				c := exec.Command("sleep", strconv.Itoa(1+i%3))
				if c.Start() == nil {
					wave = append(wave, c)
				}
			}
			h := testkit.HelperCommand("sockets", `PICKET_TEST_SOCKETS={"Comm":"pkt-churn","UDPUnbound":300}`)
			in, _ := h.StdinPipe()
			if h.Start() == nil {
				time.Sleep(time.Duration(2+i%4) * time.Second)
				in.Close()
				h.Wait()
			}
			for _, c := range wave {
				c.Wait()
			}
		}
	}()
	t.Cleanup(func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
		<-done
	})
	deadline := time.Now().Add(watch)
	looks := 0
	for time.Now().Before(deadline) {
		time.Sleep(2 * time.Second)
		s := d.snapshotOf()
		if s == nil {
			continue
		}
		looks++
		if len(s.Forecasts) > 0 {
			t.Fatalf("a forecast on churn after %s: %+v", time.Until(deadline)*-1+watch, s.Forecasts)
		}
	}
	close(stop)
	_, findings := d.get("/api/v1/findings")
	var rep struct {
		Findings []struct {
			ID, Severity, Title string
		} `json:"findings"`
	}
	json.Unmarshal(findings, &rep)
	seen := false
	for _, f := range rep.Findings {
		if f.ID == "exhaustion-forecast" {
			seen = true
			if f.Severity != "ok" {
				t.Errorf("exhaustion-forecast %s: %s", f.Severity, f.Title)
			}
		}
	}
	if !seen || looks < int(watch/(3*time.Second)) {
		t.Errorf("exhaustion-forecast in the findings: %v; %d looks", seen, looks)
	}
	t.Logf("%d looks over %s of churn: no forecast", looks, watch)
}
