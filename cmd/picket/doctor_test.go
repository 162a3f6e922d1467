package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

const doctorFixtures = "../../testdata/doctor"

type doctorJSON struct {
	Status   string `json:"status"`
	Findings []struct {
		ID          string         `json:"id"`
		Severity    string         `json:"severity"`
		Title       string         `json:"title"`
		Evidence    map[string]any `json:"evidence"`
		Explanation string         `json:"explanation"`
		Fix         []string       `json:"fix"`
	} `json:"findings"`
}

// runBinary runs the real binary and returns stdout and its exit status.
func runBinary(t *testing.T, args ...string) ([]byte, int) {
	t.Helper()
	out, err := exec.Command(snapshotTestBinary(t), args...).Output()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return out, ee.ExitCode()
	}
	if err != nil {
		t.Fatalf("picket %v: %v", args, err)
	}
	return out, 0
}

var checkIDs = []string{"tcp-orphans", "tcp-memory", "beancounters", "other-sockets", "process-storm", "cgroup-limits", "memory-thrashing", "fd-exhaustion", "conntrack", "socket-leak", "exhaustion-forecast", "kernel-log"}

// TestDoctorFixtures: each story through the real binary — the exit
// status a Nagios plugin returns, and the JSON contract of the doctor contract.
func TestDoctorFixtures(t *testing.T) {
	for _, tc := range []struct {
		name   string
		exit   int
		status string
		worst  string // the first finding
	}{
		{"healthy", 0, "ok", ""},
		{"tcp-orphans", 1, "warning", "tcp-orphans"},
		{"tcp-memory", 2, "critical", "tcp-memory"},
		{"numothersock", 2, "critical", "beancounters"},
		{"imapd-storm", 1, "warning", "process-storm"},
		{"apache-thrashing/after", 2, "critical", "memory-thrashing"},
		// Its kernel messages are of a boot long past by the wall clock:
		// evidence, but none within the hour, so no verdict of their own.
		{"kernel-said", 0, "ok", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := filepath.Join(doctorFixtures, tc.name)
			out, code := runBinary(t, "doctor", "--json", "--interval", "0", "--root", root)
			if code != tc.exit {
				t.Errorf("--json exit %d, want %d", code, tc.exit)
			}
			var r doctorJSON
			if err := json.Unmarshal(out, &r); err != nil {
				t.Fatalf("not one JSON object: %v\n%s", err, out)
			}
			if r.Status != tc.status {
				t.Errorf("status %q, want %q", r.Status, tc.status)
			}
			var ids []string
			for _, f := range r.Findings {
				ids = append(ids, f.ID)
				if f.Title == "" || f.Explanation == "" || f.Evidence == nil || f.Fix == nil {
					t.Errorf("%s: empty title, explanation, evidence or fix: %+v", f.ID, f)
				}
				if !slices.Contains([]string{"ok", "warning", "critical", "unknown"}, f.Severity) {
					t.Errorf("%s: severity %q", f.ID, f.Severity)
				}
			}
			sorted := slices.Clone(ids)
			slices.Sort(sorted)
			want := slices.Clone(checkIDs)
			slices.Sort(want)
			if !slices.Equal(sorted, want) {
				t.Errorf("ids %v, want every check once", ids)
			}
			if tc.worst != "" && ids[0] != tc.worst {
				t.Errorf("first finding %s, want %s (worst first)", ids[0], tc.worst)
			}
			// The human output exits the same way.
			if _, code := runBinary(t, "doctor", "--interval", "0", "--root", root); code != tc.exit {
				t.Errorf("text exit %d, want %d", code, tc.exit)
			}
		})
	}
}

// TestDoctorOrphansJSON: the evidence keys and fix lines the JSON contract names.
func TestDoctorOrphansJSON(t *testing.T) {
	out, _ := runBinary(t, "doctor", "--json", "--interval", "0", "--root", filepath.Join(doctorFixtures, "tcp-orphans"))
	var r doctorJSON
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatal(err)
	}
	f := r.Findings[0]
	if f.ID != "tcp-orphans" || f.Severity != "warning" {
		t.Fatalf("first finding %s %s", f.ID, f.Severity)
	}
	for k, want := range map[string]float64{"orphans": 21564, "tcp_max_orphans": 65536, "orphans_x2": 43128, "orphans_x4": 86256, "recommended_tcp_max_orphans": 87000} {
		if f.Evidence[k] != want {
			t.Errorf("%s = %v, want %v", k, f.Evidence[k], want)
		}
	}
	if !slices.Contains(f.Fix, "sysctl -w net.ipv4.tcp_max_orphans=87000") ||
		!slices.Contains(f.Fix, "echo 'net.ipv4.tcp_max_orphans = 87000' > /etc/sysctl.d/60-tcp-max-orphans.conf") {
		t.Errorf("fix = %q", f.Fix)
	}
	for _, g := range r.Findings {
		if g.ID == "tcp-memory" && (g.Severity != "ok" || g.Evidence["mem_pages"] != 1894.0 || g.Evidence["tcp_mem_high_pages"] != 6187968.0) {
			t.Errorf("tcp-memory = %s %v", g.Severity, g.Evidence)
		}
	}
}

// TestDoctorInterval: by default two snapshots a second apart, so the rate
// checks measure; --interval 0 takes one and says so.
func TestDoctorInterval(t *testing.T) {
	root := filepath.Join(doctorFixtures, "healthy")
	for _, tc := range []struct {
		args     []string
		measured bool
	}{
		{[]string{"doctor", "--json", "--root", root}, true},
		{[]string{"doctor", "--json", "--root", root, "--interval", "0"}, false},
		{[]string{"doctor", "--json", "--root", root, "--interval", "50ms"}, true},
	} {
		out, errOut, code := runCLI(t, tc.args...)
		if code != 0 {
			t.Fatalf("%v: exit %d: %s", tc.args, code, errOut)
		}
		var r doctorJSON
		if err := json.Unmarshal([]byte(out), &r); err != nil {
			t.Fatal(err)
		}
		for _, f := range r.Findings {
			if f.ID != "memory-thrashing" {
				continue
			}
			if f.Evidence["rates_measured"] != tc.measured {
				t.Errorf("%v: rates_measured = %v", tc.args, f.Evidence["rates_measured"])
			}
			if iv := f.Evidence["interval_seconds"].(float64); tc.measured != (iv > 0) {
				t.Errorf("%v: interval_seconds = %v", tc.args, iv)
			}
		}
	}
}

// TestDoctorUsageErrors: bad flags and unreadable roots are UNKNOWN (3),
// as the Nagios plugin guidelines ask, not 2 (which would page as critical).
func TestDoctorUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"doctor", "--no-such-flag"},
		{"doctor", "--interval", "-1s"},
		{"doctor", "--interval", "soon"},
		{"doctor", "--warn-percent", "99"},
		{"doctor", "--storm-percent", "120"},
		{"doctor", "--color", "purple"},
		{"doctor", "--top", "0"},
		{"doctor", "--root", t.TempDir()},
		{"doctor", "extra-argument"},
	} {
		if _, errOut, code := runCLI(t, args...); code != 3 || errOut == "" {
			t.Errorf("%v: exit %d, stderr %q; want 3 and a message", args, code, errOut)
		}
	}
	out, _, code := runCLI(t, "doctor", "--help")
	if code != 0 {
		t.Errorf("--help exit %d", code)
	}
	for _, flag := range []string{"-json", "-root", "-interval", "-color", "-verbose", "-storm-min", "-storm-percent", "-warn-percent",
		"-crit-percent", "-beancounter-percent", "-holder-min", "-psi-full-crit", "-swap-warn", "-majfault-warn", "Nagios"} {
		if !strings.Contains(out, flag) {
			t.Errorf("--help does not mention %s", flag)
		}
	}
}

// TestDoctorThresholdFlags: a threshold set on the command line changes the
// verdict (the fixture moscow has 6 imapd of alice among 19 processes).
func TestDoctorThresholdFlags(t *testing.T) {
	base := []string{"doctor", "--json", "--interval", "0", "--root", moscowRoot}
	storm := func(extra ...string) string {
		out, errOut, _ := runCLI(t, append(slices.Clone(base), extra...)...)
		var r doctorJSON
		if err := json.Unmarshal([]byte(out), &r); err != nil {
			t.Fatalf("%v: %v %s", extra, err, errOut)
		}
		for _, f := range r.Findings {
			if f.ID == "process-storm" {
				return f.Severity
			}
		}
		return ""
	}
	if s := storm(); s != "ok" {
		t.Errorf("defaults: %s", s)
	}
	if s := storm("--storm-min", "6", "--storm-percent", "30"); s != "warning" {
		t.Errorf("--storm-min 6 --storm-percent 30: %s", s)
	}
	if s := storm("--storm-min", "6", "--storm-percent", "40"); s != "ok" {
		t.Errorf("--storm-percent 40 (6 of 19 is 31.6%%): %s", s)
	}
}

// TestDoctorColor: colour only on a terminal or when asked; the hostile
// names of the moscow fixture are escaped either way.
func TestDoctorColor(t *testing.T) {
	args := []string{"doctor", "--interval", "0", "--root", moscowRoot, "--verbose", "--storm-min", "1", "--storm-percent", "0", "--top", "50"}
	plain, _, _ := runCLI(t, args...)
	color, _, _ := runCLI(t, append(slices.Clone(args), "--color", "always")...)
	if strings.Contains(plain, "\x1b") {
		t.Errorf("escape sequences in output to a buffer (not a terminal)")
	}
	if !strings.Contains(color, "\x1b[1;31mCRITICAL") {
		t.Errorf("no colour with --color always")
	}
	noColor := strings.NewReplacer("\x1b[1;31m", "", "\x1b[1;33m", "", "\x1b[1;35m", "", "\x1b[32m", "", "\x1b[0m", "").Replace(color)
	if strings.ContainsAny(noColor, "\x1b\a\r\x00") {
		t.Errorf("raw control bytes besides the colours")
	}
	for _, want := range []string{"$(touch /tmp/x)", `\x1b[31mred\x1b[0m`} {
		if !strings.Contains(plain, want) {
			t.Errorf("output lacks the escaped name %q", want)
		}
	}
	if bytes.Contains([]byte(plain), []byte("\x1b[31mred")) {
		t.Errorf("a raw escape sequence from a process name reached the output")
	}
}

// TestWantColor: "auto" colours a terminal only, and never with NO_COLOR.
func TestWantColor(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	if c, _ := wantColor("auto", w); c {
		t.Errorf("a pipe is not a terminal")
	}
	if c, _ := wantColor("auto", &bytes.Buffer{}); c {
		t.Errorf("a buffer is not a terminal")
	}
	if c, _ := wantColor("always", w); !c {
		t.Errorf("always")
	}
	if _, err := wantColor("sometimes", w); err == nil {
		t.Errorf("a bad mode accepted")
	}
	ptm, pty, err := openPTY()
	if err != nil {
		t.Skipf("no pseudo-terminal to test on: %v", err)
	}
	defer ptm.Close()
	defer pty.Close()
	t.Setenv("NO_COLOR", "")
	if c, _ := wantColor("auto", pty); !c {
		t.Errorf("a terminal gets no colour")
	}
	t.Setenv("NO_COLOR", "1")
	if c, _ := wantColor("auto", pty); c {
		t.Errorf("NO_COLOR ignored")
	}
}

// openPTY opens a new pseudo-terminal: its master and its terminal side.
func openPTY() (master, tty *os.File, err error) {
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR, 0)
	if err != nil {
		return nil, nil, err
	}
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		m.Close()
		return nil, nil, err
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		m.Close()
		return nil, nil, err
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		m.Close()
		return nil, nil, err
	}
	return m, s, nil
}
