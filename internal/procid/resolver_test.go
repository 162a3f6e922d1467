package procid

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/picket-guard/picket/internal/testkit"
)

// TestResolverNSS names a uid that only the name service knows (a real
// NSS module: libnss-extrausers): the first answer is "not yet" and never
// waits for getent; a later one is the name. A uid nobody knows is asked
// once and remembered as unknown.
func TestResolverNSS(t *testing.T) {
	testkit.Need(t, "getent", "libc-bin")
	const uid, name = 45678, "pkt-nisuser"
	testkit.ExtraUser(t, name, uid)
	if out, err := exec.Command("getent", "passwd", "45678").Output(); err != nil || !strings.HasPrefix(string(out), name+":") {
		t.Fatalf("getent passwd 45678: %v %q: the NSS source is not set up", err, out)
	}
	r := NewResolver()
	if n, ok := r.Name(uid); ok {
		t.Fatalf("named %q before any lookup ran", n)
	}
	testkit.Eventually(t, 10*time.Second, "the name from NSS", func() bool {
		n, ok := r.Name(uid)
		return ok && n == name
	})
	const nobody = 45679
	r.Name(nobody)
	testkit.Eventually(t, 10*time.Second, "the unknown uid looked up", func() bool { return r.Lookups() == 2 && r.idle() })
	for range 5 {
		if n, ok := r.Name(nobody); ok {
			t.Fatalf("uid %d named %q", nobody, n)
		}
	}
	if n := r.Lookups(); n != 2 || !r.idle() {
		t.Errorf("%d lookups: an unknown uid must be cached as unknown", n)
	}

	// Through Users, as collect asks: passwd's names first, then NSS.
	root := t.TempDir()
	writeEtc(t, root, "passwd", "root:x:0:0::/root:/bin/sh\n")
	writeEtc(t, root, "group", "root:x:0:\n")
	u := NewUsers(root)
	u.Resolve(r)
	if a := u.Accounts(); a.Name(0) != "root" || a.Name(uid) != name || a.Name(nobody) != "45679" {
		t.Errorf("Accounts: %q %q %q", a.Name(0), a.Name(uid), a.Name(nobody))
	}
}

// TestResolverBounds runs a stand-in for getent that logs its arguments:
// the uid is one argument (no shell), each uid is asked once while it
// waits, the queue and the cache are bounded, and an answer that is not
// "no such key" (exit 2) is not cached.
func TestResolverBounds(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "log")
	stub := filepath.Join(dir, "getent")
	// Answers uid 7 with a name, exits 2 (unknown) for the rest but 99,
	// whose name service is "down" (exit 3).
	script := "#!/bin/sh\necho \"$#:$1:$2\" >> " + log + "\ncase $2 in 7) echo 'seven:x:7:7::/:/bin/sh';; 99) exit 3;; *) exit 2;; esac\n"
	if err := os.WriteFile(stub, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1e9, 0)
	r := &Resolver{Command: []string{stub, "passwd"}, Rate: 1000, MaxQueue: 4, MaxEntries: 3, Now: func() time.Time { return now }}
	for range 3 {
		for _, uid := range []uint32{7, 8, 99, 10, 11, 12} {
			r.Name(uid)
		}
	}
	testkit.Eventually(t, 10*time.Second, "the queue drained", r.idle)
	b, _ := os.ReadFile(log)
	if got, want := string(b), "2:passwd:7\n2:passwd:8\n2:passwd:99\n2:passwd:10\n"; got != want {
		t.Errorf("getent was run as:\n%s\nwant (the queue holds 4, each uid once):\n%s", got, want)
	}
	if n, ok := r.Name(7); !ok || n != "seven" {
		t.Errorf("uid 7: %q %v", n, ok)
	}
	r.mu.Lock()
	cached, has99 := len(r.cache), false
	_, has99 = r.cache[99]
	r.mu.Unlock()
	if cached > 3 || has99 {
		t.Errorf("%d entries cached (bound 3), 99 cached %v (a failed lookup is not an answer)", cached, has99)
	}
}

func (r *Resolver) idle() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return !r.running && len(r.queue) == 0
}

// TestResolverLookupName: a name is asked of the name service once and
// its uid cached (UID and Accounts.Lookup find it after, without getent);
// a name getent would read as an option, or that no passwd line can hold,
// is never asked.
func TestResolverLookupName(t *testing.T) {
	testkit.Need(t, "getent", "libc-bin")
	const uid, name = 45681, "pkt-nisname"
	testkit.ExtraUser(t, name, uid)
	r := NewResolver()
	if _, ok := r.UID(name); ok {
		t.Fatal("UID answered before any lookup")
	}
	got, ok, err := r.LookupName(t.Context(), name)
	if err != nil || !ok || got != uid {
		t.Fatalf("LookupName(%q) = %d %v %v, want %d", name, got, ok, err, uid)
	}
	if got, ok := r.UID(name); !ok || got != uid {
		t.Errorf("UID after the lookup: %d %v", got, ok)
	}
	root := t.TempDir()
	writeEtc(t, root, "passwd", "root:x:0:0::/root:/bin/sh\n")
	writeEtc(t, root, "group", "root:x:0:\n")
	u := NewUsers(root)
	u.Resolve(r)
	n := r.Lookups()
	if got, err := u.Accounts().Lookup(name); err != nil || got != uid {
		t.Errorf("Accounts.Lookup(%q) = %d %v", name, got, err)
	}
	if got, err := u.Accounts().LookupNow(t.Context(), name); err != nil || got != uid || r.Lookups() != n {
		t.Errorf("LookupNow of a cached name: %d %v, %d more lookups", got, err, r.Lookups()-n)
	}
	if _, err := u.Accounts().LookupNow(t.Context(), "pkt-nosuchname"); err == nil || !strings.Contains(err.Error(), `unknown user "pkt-nosuchname"`) {
		t.Errorf("LookupNow of an unknown name: %v", err)
	}
	n = r.Lookups()
	for _, bad := range []string{"-s", "--service=files", "a:b", "a\nb", ""} {
		if _, ok, err := r.LookupName(t.Context(), bad); ok || err != nil {
			t.Errorf("LookupName(%q) = %v %v", bad, ok, err)
		}
	}
	if r.Lookups() != n {
		t.Errorf("%d lookups for names no passwd line can hold", r.Lookups()-n)
	}
}
