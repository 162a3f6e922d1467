package collect

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/picket-guard/picket/internal/testkit"
)

// TestUsersByRealUID: RLIMIT_NPROC counts a process against its real uid
// (copy_process in kernel/fork.c checks the real uid's ucounts), so the
// per-user totals it is judged by go by the real uid, while groups, the
// list and holders keep the effective one ps shows. Here bob runs a
// setuid-root master (Uid: 1002 0 0 0): it is root's in its group and
// bob's in the users table.
func TestUsersByRealUID(t *testing.T) {
	root := testkit.CopyTree(t, moscow)
	status := filepath.Join(root, "proc", "302", "status")
	b, err := os.ReadFile(status)
	if err != nil {
		t.Fatal(err)
	}
	b = []byte(strings.Replace(string(b), "Uid:\t0\t0\t0\t0", "Uid:\t1002\t0\t0\t0", 1))
	if err := os.WriteFile(status, b, 0o644); err != nil {
		t.Fatal(err)
	}
	before, err := collectRoot(t, moscow)
	if err != nil {
		t.Fatal(err)
	}
	s, err := collectRoot(t, root)
	if err != nil {
		t.Fatal(err)
	}
	users := func(name string) (n, threads int) {
		for _, u := range s.Processes.Users {
			if u.User == name {
				return u.Count, u.Threads
			}
		}
		return 0, 0
	}
	usersBefore := func(name string) (n, threads int) {
		for _, u := range before.Processes.Users {
			if u.User == name {
				return u.Count, u.Threads
			}
		}
		return 0, 0
	}
	bob, _ := users("bob")
	bob0, _ := usersBefore("bob")
	rootN, _ := users("root")
	root0, _ := usersBefore("root")
	if bob != bob0+1 || rootN != root0-1 {
		t.Errorf("users: bob %d (was %d), root %d (was %d): the setuid master counts for its real uid", bob, bob0, rootN, root0)
	}
	if g := findGroup(s, "root", "master"); g == nil || g.Count != 1 {
		t.Errorf("the group keeps the effective uid: %+v", g)
	}
	if p := findProc(s, 302); p == nil || p.User != "root" {
		t.Errorf("the list keeps the effective uid: %+v", p)
	}
}
