package collect

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/picket-guard/picket/internal/snapshot"
	"github.com/picket-guard/picket/internal/testkit"
)

// TestConntrackSource: the connection table is read on its own, and a
// malformed file is reported under the conntrack source, not the other
// kernel limits, so doctor can tell "not loaded" from "unreadable".
func TestConntrackSource(t *testing.T) {
	s, err := collectRoot(t, moscow)
	if err != nil {
		t.Fatal(err)
	}
	if s.Kernel.Conntrack == nil || s.Kernel.Conntrack.Max <= 0 {
		t.Fatalf("conntrack not read: %+v", s.Kernel.Conntrack)
	}

	root := testkit.CopyTree(t, moscow)
	if err := os.WriteFile(filepath.Join(root, "proc/sys/net/netfilter/nf_conntrack_max"), []byte("lots\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err = collectRoot(t, root)
	if err == nil {
		t.Fatal("a malformed nf_conntrack_max is no error")
	}
	if e, ok := s.SourceError(snapshot.SourceConntrack); !ok {
		t.Errorf("no conntrack error in %q", s.Errors)
	} else if want := filepath.Join(root, "proc/sys/net/netfilter/nf_conntrack_max") + ":1: field 1"; !strings.Contains(e, want) {
		t.Errorf("conntrack error %q does not point at %s", e, want)
	}
	if e, ok := s.SourceError(snapshot.SourceLimits); ok {
		t.Errorf("the other limits report an error: %q", e)
	}
	if s.Kernel.Conntrack != nil || s.Kernel.FileNr == nil {
		t.Errorf("conntrack %+v, file-nr %+v", s.Kernel.Conntrack, s.Kernel.FileNr)
	}
}
