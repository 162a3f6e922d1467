package sockiter

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestGenerated compiles bpf/*.bpf.c again (every go:generate line), as
// go generate does, and checks that the committed objects and loaders are
// their output: a change to the C source must come with its objects.
// Needs clang, llvm and libbpf-dev (scripts/test installs them).
func TestGenerated(t *testing.T) {
	if testing.Short() {
		t.Skip("compiles the BPF program")
	}
	for _, tool := range []string{"clang", "llvm-strip"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed (apt-get install clang llvm libbpf-dev)", tool)
		}
	}
	if _, err := os.Stat("/usr/include/bpf/bpf_helpers.h"); err != nil {
		t.Skip("libbpf-dev is not installed (bpf/bpf_helpers.h)")
	}
	src, err := os.ReadFile("gen.go")
	if err != nil {
		t.Fatal(err)
	}
	var runs [][]string
	for _, l := range strings.Split(string(src), "\n") {
		if a, ok := strings.CutPrefix(l, "//go:generate go tool bpf2go "); ok {
			runs = append(runs, splitQuoted(a))
		}
	}
	if runs == nil {
		t.Fatal("gen.go has no go:generate line for bpf2go")
	}
	for _, args := range runs {
		compareGenerated(t, args)
	}
}

// compareGenerated runs bpf2go with args into a temporary directory and
// compares what it writes with the committed files.
func compareGenerated(t *testing.T, args []string) {
	t.Helper()
	out := t.TempDir()
	cmd := exec.Command("go", append([]string{"tool", "bpf2go", "-output-dir", out, "-go-package", "sockiter"}, args...)...)
	cmd.Env = append(os.Environ(), "GOFILE=gen.go", "GOPACKAGE=sockiter")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("bpf2go %v: %v\n%s", args, err, b)
	}
	names, err := filepath.Glob(filepath.Join(out, "*"))
	if err != nil || len(names) == 0 {
		t.Fatalf("bpf2go wrote nothing to %s (%v)", out, err)
	}
	src := args[len(args)-1]
	for _, n := range names {
		want, err := os.ReadFile(n)
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Base(n))
		if err != nil {
			t.Errorf("%s is not committed: run scripts/gen-bpf", filepath.Base(n))
			continue
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s is not what %s compiles to: run scripts/gen-bpf", filepath.Base(n), src)
		}
	}
}

// splitQuoted splits a go:generate line as go generate does: on spaces,
// with double-quoted words kept whole.
func splitQuoted(s string) []string {
	var args []string
	var cur strings.Builder
	quoted, in := false, false
	for _, r := range s {
		switch {
		case r == '"':
			quoted, in = !quoted, true
		case r == ' ' && !quoted:
			if in {
				args = append(args, cur.String())
				cur.Reset()
				in = false
			}
		default:
			cur.WriteRune(r)
			in = true
		}
	}
	if in {
		args = append(args, cur.String())
	}
	return args
}
