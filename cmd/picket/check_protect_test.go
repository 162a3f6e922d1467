package main

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/picket-guard/picket/internal/testkit"
)

// TestCheckHonoursProtect: `picket check` (a one-shot look that acts) takes
// the configuration's protect: as the daemon does: a kill rule aimed at
// nobody's processes is refused while protect: names nobody, and the
// processes live; without it the same check kills them.
func TestCheckHonoursProtect(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: starts processes as nobody and kills them; CI runs as root")
	}
	procs := testkit.Sleepers(t, "pkt-chkpr", 2, &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}})
	exited := make(chan struct{}, len(procs))
	for _, c := range procs {
		go func() { c.Wait(); exited <- struct{}{} }()
	}
	dir := t.TempDir()
	cfg := filepath.Join(dir, "picket.yaml")
	rule := `
rules:
  - name: no-chkpr
    table: process_groups
    if: comm == "pkt-chkpr" && user == "nobody"
    then: [{kill: {comm: pkt-chkpr, user: nobody, signal: KILL}}]
`
	writeConfig(t, cfg, "protect: {users: [nobody]}\n"+rule)
	out, errOut, _ := runCLI(t, "check", "--config", cfg, "--state-dir", filepath.Join(dir, "state"))
	if !strings.Contains(out+errOut, "protected user") {
		t.Errorf("check with protect: says nothing of the protected user:\n%s%s", out, errOut)
	}
	select {
	case <-exited:
		t.Fatalf("a process of the protected user was killed:\n%s%s", out, errOut)
	case <-time.After(500 * time.Millisecond):
	}
	writeConfig(t, cfg, rule)
	out, errOut, _ = runCLI(t, "check", "--config", cfg, "--state-dir", filepath.Join(dir, "state"))
	for range procs {
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			t.Fatalf("without protect: the check did not kill them:\n%s%s", out, errOut)
		}
	}
}
