package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// TestVersion: picket version names the build; -ldflags -X sets version
// and commit, as the package build does.
func TestVersion(t *testing.T) {
	out, _, code := runCLI(t, "version")
	if code != 0 || !strings.HasPrefix(out, "picket ") || !strings.Contains(out, runtime.Version()+" linux/") {
		t.Errorf("version: %d %q", code, out)
	}
	if alias, _, _ := runCLI(t, "--version"); alias != out {
		t.Errorf("--version %q, version %q", alias, out)
	}
	bin := filepath.Join(t.TempDir(), "picket")
	cmd := exec.Command("go", "build", "-o", bin, "-ldflags", "-X main.version=1.2.3 -X main.commit=0123456789abcdef", ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, b)
	}
	b, err := exec.Command(bin, "version").Output()
	if want := "picket 1.2.3 commit 0123456789abcdef " + runtime.Version() + " linux/"; err != nil || !strings.HasPrefix(string(b), want) {
		t.Errorf("ldflags build: %v %q, want %q…", err, b, want)
	}
}
