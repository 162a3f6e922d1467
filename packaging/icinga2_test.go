package packaging

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/picket-guard/picket/internal/testkit"
)

// icingaConfig is a main configuration around the example: Icinga's own
// template library, the example, and hosts that use it.
// icinga2 drops root for its own user (nagios) before it reads anything,
// so the files go to a directory anyone may read, not t.TempDir() (0700)
// or the checkout (which may be under /root).
func icingaConfig(t *testing.T, example string) string {
	t.Helper()
	b, err := os.ReadFile(example)
	if err != nil {
		t.Fatal(err)
	}
	dir := testkit.SharedDir(t)
	if err := os.WriteFile(filepath.Join(dir, "picket.conf"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	main := filepath.Join(dir, "icinga2.conf")
	src := `include <itl>
include "picket.conf"
object Host "moscow" {
  check_command = "dummy"
  vars.picket_checks = [ "tcp-orphans", "process-storm", "memory-thrashing" ]
  vars.picket_thresholds["tcp-orphans"] = { critical = [ "orphans=30000" ] }
  vars.agent_endpoint = "moscow"
  zone = "master"
}
object Endpoint "master" { }
object Zone "master" { endpoints = [ "master" ] }
object Endpoint "moscow" { }
object Zone "moscow" { endpoints = [ "moscow" ]; parent = "master" }
object Host "plain" {
  check_command = "dummy"
}
`
	if err := os.WriteFile(main, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	return main
}

// TestIcinga2CheckCommand: Debian's icinga2 validates the example with
// hosts that use it (icinga2 daemon -C), and would refuse a broken one;
// its CheckCommand passes every threshold flag picket doctor has.
func TestIcinga2CheckCommand(t *testing.T) {
	icinga := testkit.Need(t, "icinga2", "icinga2")
	out, err := exec.Command(icinga, "daemon", "-C", "-x", "information", "-c", icingaConfig(t, "icinga2/picket.conf")).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "Instantiated 3 Services.") {
		t.Fatalf("icinga2 daemon -C: %v\n%s", err, out)
	}
	// The check really is looked at: a typo in the example fails.
	b, err := os.ReadFile("icinga2/picket.conf")
	if err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(t.TempDir(), "bad.conf")
	os.WriteFile(bad, []byte(strings.Replace(string(b), "repeat_key = true", "repeat_kye = true", 1)), 0o644)
	if out, err := exec.Command(icinga, "daemon", "-C", "-x", "critical", "-c", icingaConfig(t, bad)).CombinedOutput(); err == nil {
		t.Errorf("a broken CheckCommand validated:\n%s", out)
	}

	help, err := exec.Command("go", "run", "../cmd/picket", "doctor", "--help").Output()
	if err != nil {
		t.Fatalf("picket doctor --help: %v", err)
	}
	// Not for a monitoring service: output formats and fixture inputs.
	skip := map[string]bool{"json": true, "verbose": true, "color": true, "root": true, "snapshot": true}
	for _, m := range regexp.MustCompile(`(?m)^  -([a-z0-9-]+)`).FindAllStringSubmatch(string(help), -1) {
		if !skip[m[1]] && !strings.Contains(string(b), `"--`+m[1]+`" =`) {
			t.Errorf("the CheckCommand has no argument for picket doctor --%s", m[1])
		}
	}
}
