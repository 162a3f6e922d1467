package daemon

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestStateDirRefused: a state directory others can write (a 1777 one, as
// a careless install makes) lets any user plant picket.log as a symlink to
// /etc/shadow, and root would append its log to it. Such a directory is
// refused; in a safe one a symlinked picket.log (or journal) is not
// followed. The victim file is never written.
func TestStateDirRefused(t *testing.T) {
	victim := filepath.Join(t.TempDir(), "shadow")
	if err := os.WriteFile(victim, []byte("root:x:...\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, want string
		mode       os.FileMode
		link       string
	}{
		{"1777 with a planted picket.log", "writable by group or others", 0o1777, "picket.log"},
		{"0700 with a planted picket.log", "too many levels of symbolic links", 0o700, "picket.log"},
		{"0700 with a planted journal", "symbolic links", 0o700, "journal.jsonl"},
	} {
		state := filepath.Join(t.TempDir(), "state")
		os.Mkdir(state, 0o700)
		os.Chmod(state, c.mode)
		if err := os.Symlink(victim, filepath.Join(state, c.link)); err != nil {
			t.Fatal(err)
		}
		d, err := New(Options{LoadConfig: loader("rules: []\n"), StateDir: state, Stderr: io.Discard, Listen: "off", NoProtect: true})
		if err == nil {
			d.closeState()
			t.Errorf("%s: the daemon started", c.name)
		} else if !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
		if b, _ := os.ReadFile(victim); string(b) != "root:x:...\n" {
			t.Fatalf("%s: the symlink's target was written: %q", c.name, b)
		}
	}
}
