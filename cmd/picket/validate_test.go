package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestValidateAllHosts: a fleet's one file, checked as each host it names
// (and a host it names nowhere) would load it: mistakes for some hosts
// only, at their FILE:LINE:COL, exit 1; the examples pass for every host.
func TestValidateAllHosts(t *testing.T) {
	p := filepath.Join(t.TempDir(), "fleet.yaml")
	src := `hosts:
  moscow: {labels: [mail]}
  nantes: {labels: [nis]}
vars:
  limit: {moscow: 20, nantes: "twenty"}
outputs:
  log:
    log: {stderr: true}
rules:
  - name: storm
    table: process_groups
    if: count >= vars.limit
    then: [log]
`
	if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, errOut, code := runCLI(t, "validate", p); code != 0 {
		t.Fatalf("plain validate: %d %s (the file loads: its mistakes are per host)", code, errOut)
	}
	out, errOut, code := runCLI(t, "validate", "--all-hosts", p)
	want := []string{
		p + `:12:15: host nantes: rule storm case default: if: invalid operation: >= (mismatched types int and string) (here vars.limit = "twenty")`,
		p + ":12:23: any other host: rule storm case default: if: vars.limit has no value on this host (no default, and it is set only for moscow; nantes)",
	}
	if code != 1 || strings.TrimSpace(errOut) != strings.Join(want, "\n") || out != "" {
		t.Errorf("exit %d\nstdout %q\nstderr\n%s\nwant\n%s", code, out, errOut, strings.Join(want, "\n"))
	}
	if err := os.WriteFile(p, []byte(strings.Replace(src, `"twenty"`, "10", 1)+"    hosts: [moscow, nantes]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, errOut, code = runCLI(t, "validate", "--all-hosts", p, "../../examples/procnumchk.yaml")
	if code != 0 || !strings.Contains(out, p+": ok as moscow, nantes, any other host\n") ||
		!strings.Contains(out, "procnumchk.yaml: ok as moscow, nantes, any other host\n") {
		t.Errorf("fixed: exit %d\n%s%s", code, out, errOut)
	}
}

func TestValidateEveryMistakeOnItsOwnLine(t *testing.T) {
	p := filepath.Join(t.TempDir(), "two.yaml")
	src := "rules:\n  - name: a\n    table: nosuch\n    if: \"true\"\n  - name: b\n    table: alsonot\n    if: \"true\"\n"
	if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	_, errOut, code := runCLI(t, "validate", p)
	if code != 1 {
		t.Fatalf("validate: exit %d, want 1", code)
	}
	lines := strings.Split(strings.TrimSpace(errOut), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], p+":3:12: rule a:") || !strings.HasPrefix(lines[1], p+":6:12: rule b:") {
		t.Fatalf("want one FILE:LINE:COL line per mistake, got:\n%s", errOut)
	}
	if _, errOut, _ := runCLI(t, "check", "--dry-run", "--config", p); strings.Contains(errOut, `\n`) {
		t.Fatalf("check prints the list as one line:\n%s", errOut)
	}
}

// TestValidateProtect: protect: is checked where it is written: a relative
// executable, a unit that is no unit name, a pid (reused by the kernel)
// and an unknown key are each told at their position; a second file
// giving protect: too is refused at its key, not merged.
func TestValidateProtect(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "protect.yaml")
	src := "protect:\n  exes: [mysqld]\n  units: [postgresql]\n  pids: [1234]\n  user: [imap]\n"
	if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	_, errOut, code := runCLI(t, "validate", "--no-host", p)
	if w := p + `:5:3: protect: unknown key "user" (known: admin_groups, exes, no_defaults, pids, units, users)`; code != 1 || !strings.Contains(errOut, w) {
		t.Errorf("unknown key: exit %d, want %q in\n%s", code, w, errOut)
	}
	src = strings.Replace(src, "  user: [imap]\n", "  users: [imap]\n", 1)
	if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	_, errOut, code = runCLI(t, "validate", "--no-host", p)
	for _, w := range []string{
		"\n" + p + `:2:3: protect: exes: "mysqld" is not a clean absolute path`,
		"\n" + p + `:2:3: protect: units: "postgresql" is not a unit name`,
		"\n" + p + `:2:3: protect: pids: the kernel reuses pids`,
	} {
		errOut := "\n" + errOut
		if code != 1 || !strings.Contains(errOut, w) {
			t.Errorf("exit %d, want %q in\n%s", code, w, errOut)
		}
	}
	good := "protect:\n  exes: [/usr/sbin/mysqld]\n  units: [postgresql.service]\n  users: [imap]\n"
	inc := filepath.Join(dir, "more.yaml")
	if err := os.WriteFile(inc, []byte("protect: {users: [mail]}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte("include: [more.yaml]\n"+good), 0o644); err != nil {
		t.Fatal(err)
	}
	_, errOut, code = runCLI(t, "validate", "--no-host", p)
	if w := p + ":2:1: protect: given twice (first at " + inc + ":1:1"; code != 1 || !strings.Contains(errOut, w) {
		t.Errorf("twice: exit %d, want %q in\n%s", code, w, errOut)
	}
	if err := os.WriteFile(p, []byte(good), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, errOut, code := runCLI(t, "validate", "--no-host", p); code != 0 {
		t.Errorf("a good protect: exit %d\n%s%s", code, out, errOut)
	}
}
