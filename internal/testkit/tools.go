package testkit

import (
	"os"
	"os/exec"
	"testing"
)

// Need finds the program a test cannot do without (a path, or a name
// looked up in PATH), from the Debian package pkg. Missing, it fails the
// test when running as root, because scripts/test installs pkg as root and
// CI must not skip; for a developer who is not root it skips, naming the
// package.
func Need(t testing.TB, tool, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(tool)
	if err == nil {
		return p
	}
	if os.Geteuid() == 0 {
		t.Fatalf("%s is missing: scripts/test installs Debian's %s as root", tool, pkg)
	}
	t.Skipf("%s is missing (Debian's %s; scripts/test installs it when run as root)", tool, pkg)
	return ""
}

// SharedDir is a new directory that every user may read and enter, removed
// when the test ends: for files a process of another user (nobody, a
// daemon that drops root) must reach, which t.TempDir's (0700) are not.
func SharedDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "picket-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}
