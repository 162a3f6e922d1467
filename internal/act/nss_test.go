package act

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/picket-guard/picket/internal/procid"
	"github.com/picket-guard/picket/internal/testkit"
	"github.com/picket-guard/picket/internal/testkit/snaptest"
)

// TestKillNameServiceUser: a user only the name service knows (LDAP, sssd;
// here a real NSS module, libnss-extrausers) is named in the rows by the
// collector's resolver, and a kill aimed at that name, as a rule's
// user: "{{.user}}" renders it, reaches the user's processes through the
// same resolver; protect: names such a user before any of its processes
// was seen, and the kill is refused.
func TestKillNameServiceUser(t *testing.T) {
	testkit.Need(t, "getent", "libc-bin")
	const uid, name = 45690, "pkt-ldapuser"
	testkit.ExtraUser(t, name, uid)
	bin := testkit.NamedBin(t, "pkt-nssimapd")
	nss := procid.NewResolver()

	// protect: is loaded before any look named the uid: the runner asks
	// the name service itself.
	guarded := newRunner(t, Options{NameService: nss, Protected: Protected{Users: []string{name}}})
	if n := nss.Lookups(); n != 1 {
		t.Errorf("%d name service lookups for protect:, want 1", n)
	}
	victim := spawn(t, uid, nil, filepath.Join(bin, "pkt-nssimapd"), "600")
	spec := &KillSpec{User: name, Comm: "pkt-nssimapd", Signal: "KILL"}
	if res := guarded.Do(t.Context(), Request{Spec: spec, Rule: "r", Snapshot: snaptest.Live(t)}); !strings.Contains(res.Result, "protected user") {
		t.Errorf("kill of a protected name-service user: %+v", res)
	}
	if !victim.alive() {
		t.Fatal("a protected name-service user's process was killed")
	}

	// Without a resolver the name is unknown: refused, nothing signalled.
	plain := newRunner(t, Options{})
	if res := plain.Do(t.Context(), Request{Spec: spec, Rule: "r", Snapshot: snaptest.Live(t)}); !strings.Contains(res.Result, "unknown user") {
		t.Errorf("without the name service: %+v", res)
	}
	// The collector's resolver has named the uid (a look did): the kill
	// finds it without asking again.
	nss2 := procid.NewResolver()
	nss2.Name(uid)
	testkit.Eventually(t, 10*time.Second, "the uid named", func() bool { n, ok := nss2.Name(uid); return ok && n == name })
	before := nss2.Lookups()
	r := newRunner(t, Options{NameService: nss2})
	res := r.Do(t.Context(), Request{Spec: spec, Rule: "r", Snapshot: snaptest.Live(t)})
	if !victim.waitExit(5 * time.Second) {
		t.Fatalf("the name-service user's process lives: %+v", res)
	}
	if n := nss2.Lookups(); n != before {
		t.Errorf("the kill asked the name service %d more times: an action must not fork for a name", n-before)
	}
}
