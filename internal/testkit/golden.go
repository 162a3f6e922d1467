package testkit

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// update is the one flag that accepts new output: `go test ./PKG -update`
// (with -run to pick the tests) rewrites the golden files those tests
// compare with.
var update = flag.Bool("update", false, "rewrite the golden files under testdata/ with what the tests print")

// Golden compares got with the golden file testdata/NAME of the package
// under test (NAME may hold a directory). A difference fails the test, not
// at once, so every golden file of a table is checked, and says the first
// line that differs and the command that accepts the new output. With
// -update it writes got as the golden file instead.
func Golden(t testing.TB, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	accept := fmt.Sprintf("go test %s -run '%s' -update", pkgArg(), t.Name())
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("updated %s", path)
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("golden file: %v (%s creates it)", err, accept)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file (%s accepts it):\n%s", path, accept, firstDiff(want, got))
	}
}

// firstDiff says where b first departs from a, line by line.
func firstDiff(a, b []byte) string {
	al, bl := strings.Split(string(a), "\n"), strings.Split(string(b), "\n")
	for i := 0; i < len(al) && i < len(bl); i++ {
		if al[i] != bl[i] {
			return fmt.Sprintf("line %d:\n- %s\n+ %s", i+1, al[i], bl[i])
		}
	}
	return fmt.Sprintf("the golden file has %d lines, the output %d", len(al), len(bl))
}

// pkgArg is the package under test as `go test` takes it from the
// repository's root ("./internal/doctor"); "." when the root is not found.
func pkgArg() string {
	wd, err := os.Getwd()
	if err != nil {
		return "."
	}
	root, err := repoRoot()
	if err != nil {
		return "."
	}
	rel, err := filepath.Rel(root, wd)
	if err != nil || rel == "." {
		return "."
	}
	return "./" + filepath.ToSlash(rel)
}
