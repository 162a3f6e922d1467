// Package packaging tests what an administrator installs: the .deb that
// build-deb makes, installed and removed with dpkg on this machine, and the
// Icinga 2 CheckCommand, loaded by a real icinga2.
package packaging

import (
	"bytes"
	"debug/elf"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/picket-guard/picket/internal/testkit"
)

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// The .deb, built once for every test here into debDir.
var (
	debOnce sync.Once
	debDir  string
	debPath string
	debErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if debDir != "" {
		os.RemoveAll(debDir)
	}
	os.Exit(code)
}

// buildDeb runs build-deb (once) and returns the .deb.
func buildDeb(t *testing.T) string {
	t.Helper()
	testkit.Need(t, "dpkg-deb", "dpkg")
	debOnce.Do(func() {
		start := time.Now()
		if debDir, debErr = os.MkdirTemp("", "picket-deb-"); debErr != nil {
			return
		}
		out, err := exec.Command("./build-deb", debDir).Output()
		if err != nil {
			if ee, ok := err.(*exec.ExitError); ok {
				err = fmt.Errorf("%v\n%s", err, ee.Stderr)
			}
			debErr = fmt.Errorf("build-deb: %w", err)
			return
		}
		debPath = strings.TrimSpace(string(out))
		if !strings.HasSuffix(debPath, ".deb") {
			debErr = fmt.Errorf("build-deb printed %q", out)
		}
		t.Logf("build-deb: %s", time.Since(start).Round(time.Millisecond))
	})
	if debErr != nil {
		t.Fatal(debErr)
	}
	return debPath
}

// scanRoots are where a package could leave something behind; dpkg's own
// records and logs, and caches that triggers rebuild, change with any
// install and are not ours.
var (
	scanRoots = []string{"/etc", "/usr", "/lib", "/var", "/opt", "/srv"}
	scanSkip  = []string{"/var/lib/dpkg", "/var/log", "/var/cache/man", "/var/cache/apt", "/var/cache/debconf", "/var/lib/apt",
		"/usr/local/go", "/var/tmp"}
)

// fileList is every path under scanRoots.
func fileList(t *testing.T) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	for _, root := range scanRoots {
		filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return nil // vanished or unreadable: not ours
			}
			if d.IsDir() && slices.Contains(scanSkip, p) {
				return filepath.SkipDir
			}
			out[p] = true
			return nil
		})
	}
	return out
}

func diffLists(before, after map[string]bool) (added, removed []string) {
	for p := range after {
		if !before[p] {
			added = append(added, p)
		}
	}
	for p := range before {
		if !after[p] {
			removed = append(removed, p)
		}
	}
	slices.Sort(added)
	slices.Sort(removed)
	return
}

// The files the package installs, and those it must not.
var packaged = []string{
	"/usr/bin/picket",
	"/lib/systemd/system/picket.service",
	"/etc/picket/picket.yaml",
	"/usr/share/doc/picket/copyright",
	"/usr/share/doc/picket/changelog.Debian.gz",
	"/usr/share/doc/picket/README.md",
	"/usr/share/doc/picket/checks.md",
	"/usr/share/doc/picket/fleet.md",
	"/usr/share/doc/picket/prometheus/picket-rules.yml",
	"/usr/share/doc/picket/examples/procnumchk.yaml",
	"/usr/share/doc/picket/examples/tcp-orphans.yaml",
	"/usr/share/man/man1/picket.1.gz",
	"/usr/share/bash-completion/completions/picket",
	"/usr/share/lintian/overrides/picket",
}

// TestDebLintian: lintian, with every tag it knows (pedantic and info
// included), finds nothing but the overrides the package justifies.
func TestDebLintian(t *testing.T) {
	lintian := testkit.Need(t, "lintian", "lintian")
	deb := buildDeb(t)
	args := []string{"--info", "--pedantic", "--fail-on", "error,warning,info,pedantic", deb}
	if os.Geteuid() == 0 {
		args = append([]string{"--allow-root"}, args...)
	}
	start := time.Now()
	cmd := exec.Command(lintian, args...)
	// lintian leaves a file of its ELF cache (mldbm-elf-*) in TMPDIR on
	// every run: in the test's own, it goes with the test.
	cmd.Env = append(os.Environ(), "TMPDIR="+t.TempDir())
	out, err := cmd.CombinedOutput()
	t.Logf("lintian: %s", time.Since(start).Round(time.Millisecond))
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("lintian %s: %v\n%s", deb, err, out)
	}
	// Every override carries its reason: a comment right above it.
	b, err := os.ReadFile("deb/lintian-overrides")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(b), "\n")
	for i, l := range lines {
		if strings.HasPrefix(l, "picket: ") && (i == 0 || !strings.HasPrefix(lines[i-1], "#")) {
			t.Errorf("override without a reason: %s", l)
		}
	}
}

// TestDebInstall installs the package with dpkg as an administrator
// would, uses the installed binary, removes and purges it, and checks that
// the machine's file list is what it was.
func TestDebInstall(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("installs a package with dpkg -i: needs root (CI runs as root)")
	}
	dpkg := testkit.Need(t, "dpkg", "dpkg")
	if exec.Command("dpkg-query", "-W", "picket").Run() == nil {
		t.Skip("a picket package is installed on this machine: the test would replace it")
	}
	if _, err := os.Stat("/usr/bin/picket"); err == nil {
		t.Skip("/usr/bin/picket exists and is not from a package: the test would overwrite it")
	}
	deb := buildDeb(t)

	before := fileList(t)
	start := time.Now()
	installed := true
	t.Cleanup(func() {
		if installed {
			exec.Command(dpkg, "--purge", "picket").Run()
		}
	})
	run(t, dpkg, "-i", deb)
	t.Logf("dpkg -i: %s", time.Since(start).Round(time.Millisecond))

	for _, p := range packaged {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("not installed: %v", err)
		}
	}
	if out := run(t, "dpkg", "--verify", "picket"); out != "" {
		t.Errorf("dpkg --verify: %s", out)
	}
	if cf := run(t, "dpkg-query", "-W", "-f", "${Conffiles}", "picket"); !strings.Contains(cf, "/etc/picket/picket.yaml ") {
		t.Errorf("conffiles: %q", cf)
	}
	// Static: no interpreter, no dynamic section.
	if f, err := elf.Open("/usr/bin/picket"); err != nil {
		t.Error(err)
	} else {
		for _, p := range f.Progs {
			if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
				t.Errorf("/usr/bin/picket is dynamically linked (program header %s)", p.Type)
			}
		}
		f.Close()
	}
	ver := run(t, "/usr/bin/picket", "version")
	pkgVer := run(t, "dpkg-query", "-W", "-f", "${Version}", "picket")
	commit := strings.TrimSpace(run(t, "git", "rev-parse", "HEAD"))
	want := "picket " + strings.TrimSuffix(pkgVer, "-1") + " commit " + commit
	if !strings.HasPrefix(ver, want+" ") && !strings.HasPrefix(ver, want+"+dirty ") {
		t.Errorf("picket version: %q; package %s, commit %s", ver, pkgVer, commit)
	}
	if out := run(t, "/usr/bin/picket", "validate", "/etc/picket/picket.yaml"); !strings.HasPrefix(out, "/etc/picket/picket.yaml: ok: 1 rules (1 active)") {
		t.Errorf("validate: %s", out)
	}
	conf, _ := os.ReadFile("/etc/picket/picket.yaml")
	if !bytes.HasPrefix(conf, []byte("# /etc/picket/picket.yaml: ")) || !bytes.Contains(conf, []byte("picket validate /etc/picket/picket.yaml")) {
		t.Errorf("conffile header: %.300s", conf)
	}
	// doctor on this live machine: its verdict is the machine's, but it
	// must run, print its report and exit as a plugin does.
	out, err := exec.Command("/usr/bin/picket", "doctor", "--interval", "0").Output()
	code := exitCode(err)
	if code < 0 || code > 3 || !strings.HasPrefix(string(out), "picket doctor on ") {
		t.Errorf("doctor: exit %d: %v\n%s", code, err, out)
	}
	out, err = exec.Command("/usr/bin/picket", "doctor", "--interval", "0", "--check", "tcp-orphans").Output()
	if !regexp.MustCompile(`^PICKET TCP-ORPHANS (OK|WARNING|CRITICAL) - .* \| 'orphans'=`).Match(out) || exitCode(err) > 2 {
		t.Errorf("doctor --check: %v %s", err, out)
	}
	if p, err := exec.LookPath("systemd-analyze"); err == nil {
		if out, err := exec.Command(p, "verify", "/lib/systemd/system/picket.service").CombinedOutput(); err != nil || len(out) > 0 {
			t.Errorf("systemd-analyze verify: %v\n%s", err, out)
		}
	}
	if p, err := exec.LookPath("mandoc"); err == nil {
		if out, err := exec.Command(p, "-T", "lint", "-W", "all", "/usr/share/man/man1/picket.1.gz").CombinedOutput(); err != nil || len(out) > 0 {
			t.Errorf("mandoc -T lint: %v\n%s", err, out)
		}
	}
	if out := run(t, "bash", "--norc", "-c", ". /usr/share/bash-completion/completions/picket && complete -p picket"); !strings.Contains(out, "-F _picket picket") {
		t.Errorf("completion: %s", out)
	}
	// deb-systemd-helper enabled the unit (no systemd runs here, so
	// nothing started): the symlink systemctl enable would make.
	if l, err := os.Readlink("/etc/systemd/system/multi-user.target.wants/picket.service"); err != nil || l != "/lib/systemd/system/picket.service" {
		t.Errorf("not enabled: %q %v", l, err)
	}

	// remove keeps the conffile (and what deb-systemd-helper records for
	// purge); purge takes everything.
	start = time.Now()
	run(t, dpkg, "-r", "picket")
	if _, err := os.Stat("/usr/bin/picket"); err == nil {
		t.Errorf("removed, but /usr/bin/picket is still there")
	}
	if _, err := os.Stat("/etc/picket/picket.yaml"); err != nil {
		t.Errorf("remove took the conffile: %v", err)
	}
	// State picket run would have written, for purge to take.
	os.MkdirAll("/var/lib/picket/spool", 0o750)
	os.WriteFile("/var/lib/picket/journal.jsonl", []byte("{}\n"), 0o640)
	run(t, dpkg, "--purge", "picket")
	installed = false
	t.Logf("dpkg -r, --purge: %s", time.Since(start).Round(time.Millisecond))
	added, removed := diffLists(before, fileList(t))
	if len(added) > 0 || len(removed) > 0 {
		t.Errorf("purged, but the file list changed:\nleft behind: %q\ngone: %q", added, removed)
	}
}

func exitCode(err error) int {
	if err == nil {
		return 0
	}
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	return -1
}
