package secpath

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestFileAndDir: real files and directories, each made unsafe one way.
func TestFileAndDir(t *testing.T) {
	base := t.TempDir() // beneath /tmp: root's and sticky, allowed
	ok := filepath.Join(base, "ok.yaml")
	os.WriteFile(ok, []byte("x"), 0o644)
	if err := File(ok); err != nil {
		t.Errorf("0644 file in a 0700 directory: %v", err)
	}
	if err := Dir(base); err != nil {
		t.Errorf("0700 directory: %v", err)
	}
	world := filepath.Join(base, "world.yaml")
	os.WriteFile(world, []byte("x"), 0o644)
	os.Chmod(world, 0o666)
	if err := File(world); err == nil || !strings.Contains(err.Error(), "writable by group or others") {
		t.Errorf("0666 file: %v", err)
	}
	// An unsafe directory two levels up, reached through a symlink.
	open := filepath.Join(base, "open")
	os.MkdirAll(filepath.Join(open, "etc"), 0o755)
	os.Chmod(open, 0o777)
	inner := filepath.Join(open, "etc", "picket.yaml")
	os.WriteFile(inner, []byte("x"), 0o644)
	link := filepath.Join(base, "link.yaml")
	os.Symlink(inner, link)
	for _, p := range []string{inner, link} {
		if err := File(p); err == nil || !strings.Contains(err.Error(), open) {
			t.Errorf("%s beneath a 0777 directory: %v", p, err)
		}
	}
	sticky := filepath.Join(base, "sticky")
	os.Mkdir(sticky, 0o755)
	os.Chmod(sticky, 0o1777)
	if err := Dir(sticky); err == nil {
		t.Error("a 1777 state directory was accepted")
	}
	if os.Geteuid() == 0 {
		// The sticky exception is for root's directories only.
		os.Chown(sticky, 65534, 65534)
		f := filepath.Join(sticky, "f")
		os.WriteFile(f, []byte("x"), 0o644)
		if err := File(f); err == nil {
			t.Error("a file beneath nobody's 1777 directory was accepted")
		}
		mine := filepath.Join(base, "nobodys")
		os.Mkdir(mine, 0o700)
		os.Chown(mine, 65534, 65534)
		if err := Dir(mine); err == nil || !strings.Contains(err.Error(), "owned by uid 65534") {
			t.Errorf("a state directory of another user: %v", err)
		}
	}
	if err := File(base); err == nil {
		t.Error("a directory was accepted as a file")
	}
}
