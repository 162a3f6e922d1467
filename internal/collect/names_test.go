package collect

import (
	"context"
	"syscall"
	"testing"
	"time"

	"github.com/picket-guard/picket/internal/testkit"
)

// TestNameServiceUser: a user only the name service knows (NIS, LDAP; here
// libnss-extrausers) runs processes. The look that first sees the uid
// shows it as a number and does not wait for getent; a later look names
// it, in the groups, the users and the list alike.
func TestNameServiceUser(t *testing.T) {
	testkit.Need(t, "getent", "libc-bin")
	const uid, name, comm = 45678, "pkt-nisuser", "pkt-nisproc"
	testkit.ExtraUser(t, name, uid)
	testkit.Sleepers(t, comm, 3, &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: uid}})
	c, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	look := func() (group, user string) {
		t.Helper()
		s, err := c.Collect(context.Background(), Light)
		if s == nil {
			t.Fatal(err)
		}
		for _, g := range s.Processes.Groups {
			if g.Comm == comm {
				group = g.User
			}
		}
		for _, u := range s.Processes.Users {
			if u.UID == uid {
				user = u.User
			}
		}
		for _, p := range s.Processes.List {
			if p.Comm == comm && p.User != group {
				t.Errorf("one look, two names: process %d of %q, its group %q", p.PID, p.User, group)
			}
		}
		return group, user
	}
	if g, u := look(); g != "45678" || u != "45678" {
		t.Errorf("the first look: group of %q, user %q; want the uid, not yet resolved", g, u)
	}
	testkit.Eventually(t, 20*time.Second, "the name in a later look", func() bool {
		g, u := look()
		return g == name && u == name
	})
}
