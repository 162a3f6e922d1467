package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/picket-guard/picket/internal/snapshot"
	"github.com/picket-guard/picket/internal/testkit"
)

// oldKernels are the trees of testdata/gen/oldkernels.py: hosts on 2.6.32
// (an OpenVZ 6 container), 3.10 (an OpenVZ 7 container) and 4.15 (Ubuntu
// 18.04, read at its second look).
var oldKernels = []struct {
	tree   string
	doctor int // doctor's exit status
}{{"kernel-2.6.32", 2}, {"kernel-3.10", 2}, {"kernel-4.15/after", 1}}

// volatile is what changes from run to run in a snapshot's header.
var volatile = regexp.MustCompile(`at \d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ|took \d+ ms|"time": "[^"]*"|"duration_seconds": [0-9.e-]+|"age": [0-9.e+]+`)

// TestOldKernelFixtures: each older kernel's tree through snapshot, doctor,
// version --features and check --snapshot (a snapshot of it saved as JSON,
// then replayed), with golden output: no "available 0 B", no silent 0 for
// what the kernel does not print, the beancounters as OpenVZ 6 and 7 print
// them.
func TestOldKernelFixtures(t *testing.T) {
	for _, k := range oldKernels {
		tree := k.tree
		name := strings.ReplaceAll(tree, "/", "-")
		t.Run(name, func(t *testing.T) {
			root := filepath.Join(doctorFixtures, tree)
			var all bytes.Buffer
			step := func(what string, wantCode int, keep func(string) string, args ...string) string {
				out, errOut, code := runCLI(t, args...)
				if code != wantCode {
					t.Errorf("%s: exit %d, want %d\n%s", what, code, wantCode, errOut)
				}
				fmt.Fprintf(&all, "$ picket %s\n%s\n", strings.Join(args, " "), keep(out))
				return out
			}
			same := func(s string) string { return s }
			snap := step("snapshot", 0, same, "snapshot", "--root", root)
			if strings.Contains(snap, "available 0 B") {
				t.Errorf("a kernel without MemAvailable read as 0 B available")
			}
			step("doctor", k.doctor, same, "doctor", "--root", root, "--interval", "0")
			// The tree's part of the probe: not the build, nor picket's own
			// user and capabilities, which are this machine's.
			step("version --features", 0, func(s string) string {
				i, j := strings.Index(s, "kernel "), strings.Index(s, "CAPABILITY")
				if i < 0 || j < i {
					t.Errorf("version --features:\n%s", s)
					return s
				}
				return regexp.MustCompile(`running as [^,]+,`).ReplaceAllString(s[i:j], "running as …,")
			}, "version", "--features", "--root", root)
			js, _, code := runCLI(t, "snapshot", "--json", "--root", root)
			if code != 0 {
				t.Fatalf("snapshot --json: exit %d", code)
			}
			saved := filepath.Join(t.TempDir(), "snap.json")
			if err := os.WriteFile(saved, []byte(js), 0o644); err != nil {
				t.Fatal(err)
			}
			out, errOut, code := runCLI(t, "check", "--config", "testdata/old-kernels.yaml", "--snapshot", saved,
				"--dry-run", "--json", "--state-dir", t.TempDir())
			if code > 1 {
				t.Fatalf("check --snapshot: exit %d\n%s", code, errOut)
			}
			fmt.Fprintf(&all, "$ picket check --config testdata/old-kernels.yaml --snapshot SNAPSHOT --dry-run --json\n%s", out)
			var rep checkReport
			if err := json.Unmarshal([]byte(out), &rep); err != nil {
				t.Fatal(err)
			}
			for _, a := range rep.Alarms {
				if a.Rule == "memory-stall" || (a.Rule == "fd-hog" && a.Row["fds"] == nil) {
					t.Errorf("%s fired on a value the kernel does not give: %+v", a.Rule, a.Row)
				}
				if a.Rule == "low-memory" && a.Row["mem_available"] == nil {
					t.Errorf("low-memory fired on an unknown MemAvailable")
				}
			}
			got := volatile.ReplaceAll(all.Bytes(), []byte("…"))
			abs, _ := filepath.Abs(root)
			got = bytes.ReplaceAll(bytes.ReplaceAll(got, []byte(abs), []byte("TREE")), []byte(root), []byte("TREE"))
			testkit.Golden(t, "old-"+name+".txt", got)
		})
	}
}

// dropCaps runs the real binary with capabilities taken from its bounding
// and inheritable sets by util-linux's setpriv: as root, the kernel then
// gives the exec'd picket none of them.
func dropCaps(t *testing.T, caps string, args ...string) *exec.Cmd {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: capabilities are dropped from root's; CI runs as root")
	}
	setpriv := testkit.Need(t, "setpriv", "util-linux")
	return exec.Command(setpriv, append([]string{"--inh-caps=" + caps, "--bounding-set=" + caps, "--", snapshotTestBinary(t)}, args...)...)
}

// TestCapabilitiesDropped: picket without CAP_NET_ADMIN, CAP_KILL and
// CAP_SYS_PTRACE says once what it cannot do — validate refuses the
// throttle the configuration uses and names what kill and the socket
// tables lose, version --features shows the probe's answers, and picket run
// logs each refusal once at start (not once per look) and serves it in
// /healthz and /metrics.
func TestCapabilitiesDropped(t *testing.T) {
	const caps = "-net_admin,-kill,-sys_ptrace"
	cfg := "../../examples/apache-thrash.yaml"
	var stdout, stderr bytes.Buffer
	cmd := dropCaps(t, caps, "validate", cfg, "../../examples/socket-leak.yaml")
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Errorf("validate: %v, want exit 1\n%s", err, stderr.String())
	}
	for _, want := range []string{
		cfg + ": refused: throttle cannot work on this host: picket does not hold CAP_NET_ADMIN (rule apache-thrash)\n",
		cfg + ": limited: kill (rule apache-thrash): without CAP_KILL signals only processes of picket's own user (uid 0)",
		"socket-leak.yaml: limited: socket tables (rule socket-leak): without CAP_SYS_PTRACE only the sockets of picket's own user's processes",
	} {
		if strings.Count(stderr.String(), want) != 1 {
			t.Errorf("validate's stderr has %q %d times, want once:\n%s", want, strings.Count(stderr.String(), want), stderr.String())
		}
	}
	if out, err := dropCaps(t, caps, "validate", "--no-host", cfg).CombinedOutput(); err != nil {
		t.Errorf("validate --no-host: %v\n%s", err, out)
	}

	out, err := dropCaps(t, caps, "version", "--features").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, re := range []string{`(?m)^nftables +no .*throttle is refused`, `picket lacks CAP_NET_ADMIN`, `(?m)^CAP_KILL +no `,
		`(?m)^CAP_NET_ADMIN +no `, `(?m)^CAP_SYS_PTRACE +no `, `(?m)^pidfd +yes `} {
		if !regexp.MustCompile(re).Match(out) {
			t.Errorf("version --features lacks %s:\n%s", re, out)
		}
	}

	// The daemon: a few looks, then the refusals are counted in its log.
	port := freePort(t)
	var logs bytes.Buffer
	d := dropCaps(t, caps, "run", "--config", cfg, "--state-dir", t.TempDir(), "--listen", fmt.Sprintf("127.0.0.1:%d", port), "--interval", "1s")
	d.Stderr = &logs
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- d.Wait() }()
	t.Cleanup(func() { d.Process.Kill(); <-done })
	dp := &daemonProc{t: t, base: fmt.Sprintf("http://127.0.0.1:%d", port), stderr: &logs, done: done, cmd: d}
	dp.waitFor("healthz answers", 20*time.Second, func() bool { code, _ := dp.get("/healthz"); return code == 200 })
	time.Sleep(3 * time.Second) // three more looks
	_, health := dp.get("/healthz")
	var h struct {
		Host struct {
			Features     map[string]bool `json:"features"`
			Capabilities map[string]bool `json:"capabilities"`
		} `json:"host"`
		Refused []struct{ Kind, Reason string } `json:"refused"`
	}
	if err := json.Unmarshal(health, &h); err != nil {
		t.Fatal(err)
	}
	if h.Host.Features["nftables"] || !h.Host.Features["pidfd"] || h.Host.Capabilities["CAP_KILL"] || len(h.Refused) != 1 ||
		h.Refused[0].Kind != "throttle" || !strings.Contains(h.Refused[0].Reason, "CAP_NET_ADMIN") {
		t.Errorf("/healthz: %s", health)
	}
	_, metrics := dp.get("/metrics")
	for _, want := range []string{`picket_feature{name="nftables"} 0`, `picket_feature{name="pidfd"} 1`,
		`picket_capability{name="CAP_KILL"} 0`, `picket_action_kind_refused{kind="throttle"} 1`} {
		if !bytes.Contains(metrics, []byte(want)) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	d.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
		done <- nil
	case <-time.After(20 * time.Second):
		t.Fatal("no exit after SIGTERM")
	}
	log := logs.String()
	for _, want := range []string{"action kind refused on this host", "host: no CAP_KILL", "host: no nftables", "limited on this host: kill (rule apache-thrash)"} {
		if n := strings.Count(log, want); n != 1 {
			t.Errorf("the log says %q %d times, want once:\n%s", want, n, log)
		}
	}
}

// TestServiceUnitCapabilities: with exactly the capabilities the shipped
// systemd unit gives it (its CapabilityBoundingSet), picket as root still
// reads the kernel's log and loads both BPF iterators. (The unit's other
// settings are systemd's to apply: the ones that would take /dev/kmsg or
// bpf(2) away are checked in its text.)
func TestServiceUnitCapabilities(t *testing.T) {
	unit, err := os.ReadFile("../../packaging/picket.service")
	if err != nil {
		t.Fatal(err)
	}
	// The capabilities this test may hand on: a machine's own bounding
	// set may lack some (these VMs withhold CAP_SYS_RESOURCE).
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	var bnd uint64
	if m := regexp.MustCompile(`(?m)^CapBnd:\s*([0-9a-f]+)$`).FindSubmatch(status); m != nil {
		bnd, _ = strconv.ParseUint(string(m[1]), 16, 64)
	}
	numbers := map[string]int{"CAP_KILL": unix.CAP_KILL, "CAP_NET_ADMIN": unix.CAP_NET_ADMIN, "CAP_SYS_PTRACE": unix.CAP_SYS_PTRACE,
		"CAP_DAC_READ_SEARCH": unix.CAP_DAC_READ_SEARCH, "CAP_SYS_RESOURCE": unix.CAP_SYS_RESOURCE, "CAP_IPC_LOCK": unix.CAP_IPC_LOCK,
		"CAP_CHOWN": unix.CAP_CHOWN, "CAP_FOWNER": unix.CAP_FOWNER, "CAP_SYSLOG": unix.CAP_SYSLOG, "CAP_BPF": unix.CAP_BPF,
		"CAP_PERFMON": unix.CAP_PERFMON}
	var caps []string
	for _, l := range strings.Split(string(unit), "\n") {
		if v, ok := strings.CutPrefix(l, "CapabilityBoundingSet="); ok {
			for _, c := range strings.Fields(v) {
				n, ok := numbers[c]
				if !ok {
					t.Fatalf("the unit names %s, which this test does not know", c)
				}
				if bnd&(1<<n) == 0 {
					t.Logf("this machine withholds %s: the test runs picket without it", c)
					continue
				}
				caps = append(caps, "+"+strings.ToLower(strings.TrimPrefix(c, "CAP_")))
			}
		}
		for _, bad := range []string{"PrivateDevices=yes", "ProtectKernelLogs=yes"} {
			if strings.TrimSpace(l) == bad {
				t.Errorf("the unit says %s: /dev/kmsg would not be there", bad)
			}
		}
		if v, ok := strings.CutPrefix(l, "SystemCallFilter="); ok && !slices.Contains(strings.Fields(v), "bpf") {
			t.Errorf("the unit's SystemCallFilter=%s refuses bpf(2): no BPF iterator could load", v)
		}
	}
	if len(caps) == 0 {
		t.Fatal("the unit has no CapabilityBoundingSet=")
	}
	set := "-all," + strings.Join(caps, ",")
	out, err := dropCaps(t, set, "snapshot", "--json", "--collector", "bpf").Output()
	if err != nil {
		t.Fatalf("picket snapshot with the unit's capabilities (%s): %v", set, err)
	}
	var s snapshot.Snapshot
	if err := json.Unmarshal(out, &s); err != nil {
		t.Fatal(err)
	}
	if s.Collector != snapshot.CollectorBPF || s.ProcessCollector != snapshot.CollectorBPF {
		t.Errorf("with %s: collector %q (%s), process collector %q (%s)", set, s.Collector, s.CollectorReason, s.ProcessCollector, s.ProcessCollectorReason)
	}
	if s.KernelLog == nil || !s.KernelLog.Available {
		t.Errorf("with %s: the kernel log is not read: %+v", set, s.KernelLog)
	}
}
