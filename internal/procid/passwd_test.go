package procid

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

func writeEtc(t *testing.T, root, name, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "etc", name), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestUsers(t *testing.T) {
	root := t.TempDir()
	writeEtc(t, root, "passwd", "# local accounts\nroot:x:0:0:root:/root:/bin/bash\n\nalice:x:1000:1000:Alice:/home/alice:/bin/bash\ntoor:x:0:0::/root:/bin/sh\n"+
		"+::::::\nbroken:x:uid:1:::\nodd:x:1003:gid:::\nbob:x:1001:1001::/home/bob:/bin/sh\nalice:x:1004:1004::/:/bin/sh\n2024:x:5000:5000::/home/2024:/bin/sh")
	writeEtc(t, root, "group", "root:x:0:\nsudo:x:27:bob,,carol\nalice:x:1000:\nwheel:x:nope:odd\n")
	u := NewUsers(root)
	a := u.Accounts()
	for uid, want := range map[uint32]string{0: "root", 1000: "alice", 1001: "bob", 1003: "odd", 1004: "alice", 4242: "4242"} {
		if got := a.Name(uid); got != want {
			t.Errorf("Name(%d) = %q, want %q", uid, got, want)
		}
	}
	for user, want := range map[string]uint32{"root": 0, "toor": 0, "alice": 1000, "bob": 1001, "odd": 1003, "65534": 65534,
		// A numeric login (NIS, LDAP) is that login, not the uid it spells;
		// "+N" is uid N.
		"2024": 5000, "+2024": 2024, "+0": 0} {
		if got, err := a.Lookup(user); err != nil || got != want {
			t.Errorf("Lookup(%q) = %d, %v; want %d", user, got, err, want)
		}
	}
	for _, user := range []string{"broken", "carol", "+", ""} {
		if uid, err := a.Lookup(user); err == nil {
			t.Errorf("Lookup(%q) = %d, want an error", user, uid)
		}
	}
	// By primary gid (alice's group alice), by member list (bob in sudo),
	// and a group with a bad gid still names its members.
	got := a.InGroups([]string{"sudo", "alice", "wheel"})
	want := map[uint32]bool{1000: true, 1001: true, 1003: true}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("InGroups = %v, want %v", got, want)
	}
	if u.Accounts() != a {
		t.Error("unchanged files were read again")
	}

	// An edit that keeps the size and puts the modification time back is
	// still seen (the change time moves).
	passwd := filepath.Join(root, "etc", "passwd")
	fi, _ := os.Stat(passwd)
	b, _ := os.ReadFile(passwd)
	time.Sleep(10 * time.Millisecond)
	if err := os.WriteFile(passwd, bytes.Replace(b, []byte("alice:x:1004"), []byte("carol:x:1004"), 1), 0o644); err != nil {
		t.Fatal(err)
	}
	os.Chtimes(passwd, fi.ModTime(), fi.ModTime())
	a2 := u.Accounts()
	if a2 == a || a2.Name(1004) != "carol" {
		t.Errorf("renamed account: uid 1004 is %q", a2.Name(1004))
	}
	if a.Name(1004) != "alice" {
		t.Error("an earlier reading changed")
	}
	// A file that goes away keeps what was read of it.
	if err := os.Remove(passwd); err != nil {
		t.Fatal(err)
	}
	if n := u.Accounts().Name(1000); n != "alice" {
		t.Errorf("after passwd vanished, uid 1000 is %q", n)
	}
	// Never read: every uid is its number.
	if n := NewUsers(t.TempDir()).Accounts().Name(0); n != "0" {
		t.Errorf("without passwd uid 0 is %q", n)
	}
}
