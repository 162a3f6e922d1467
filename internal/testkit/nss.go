package testkit

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"syscall"
	"testing"
)

// nssLock keeps two tests from editing nsswitch.conf at once, across the
// test binaries go test runs side by side (each package is a process): a
// mutex would let one package restore the file under another's edit.
const nssLock = "/run/picket-test-nss.lock"

// ExtraUser makes uid a user named name that only the name service knows,
// not /etc/passwd: as on a NIS or LDAP site, through Debian's
// libnss-extrausers (its passwd at /var/lib/extrausers/passwd, "extrausers"
// added to the passwd line of /etc/nsswitch.conf). Both files are restored
// when the test ends, however it ends. It skips, saying why, when not
// root; as root it fails without the package (scripts/test installs it).
func ExtraUser(t testing.TB, name string, uid uint32) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("an NSS-only user needs root: /etc/nsswitch.conf and /var/lib/extrausers are root's; run the tests as root")
	}
	var found []string
	for _, g := range []string{"/usr/lib/libnss_extrausers.so.2", "/lib/libnss_extrausers.so.2", "/usr/lib/*/libnss_extrausers.so.2", "/lib/*/libnss_extrausers.so.2"} {
		m, _ := filepath.Glob(g)
		found = append(found, m...)
	}
	if len(found) == 0 {
		t.Fatal("libnss-extrausers is not installed: apt-get install libnss-extrausers (scripts/test installs it)")
	}
	lf, err := os.OpenFile(nssLock, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Flock(int(lf.Fd()), syscall.LOCK_EX); err != nil {
		lf.Close()
		t.Fatalf("lock %s: %v", nssLock, err)
	}
	t.Cleanup(func() { lf.Close() }) // closing the file drops the lock, after the restores below (cleanups run last first)
	const conf, dir = "/etc/nsswitch.conf", "/var/lib/extrausers"
	passwd := filepath.Join(dir, "passwd")
	orig, err := os.ReadFile(conf)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(conf)
	if err != nil {
		t.Fatal(err)
	}
	restore := func(path string, b []byte, existed bool, mode os.FileMode) error {
		if !existed {
			if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
				return err
			}
			return nil
		}
		return os.WriteFile(path, b, mode)
	}
	t.Cleanup(func() {
		if err := restore(conf, orig, true, st.Mode().Perm()); err != nil {
			t.Errorf("restore %s: %v", conf, err)
		}
	})
	origPasswd, err := os.ReadFile(passwd)
	hadPasswd := err == nil
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	_, err = os.Stat(dir)
	hadDir := err == nil
	t.Cleanup(func() {
		if err := restore(passwd, origPasswd, hadPasswd, 0o644); err != nil {
			t.Errorf("restore %s: %v", passwd, err)
		}
		if !hadDir {
			os.Remove(dir)
		}
	})

	line := regexp.MustCompile(`(?m)^passwd:([^\n]*)$`)
	m := line.FindSubmatch(orig)
	if m == nil {
		t.Fatalf("%s has no passwd line", conf)
	}
	edited := orig
	if !regexp.MustCompile(`\bextrausers\b`).Match(m[1]) {
		edited = line.ReplaceAll(orig, []byte("passwd:$1 extrausers"))
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	entry := fmt.Sprintf("%s:x:%d:%d:picket test:/nonexistent:/usr/sbin/nologin\n", name, uid, uid)
	if err := os.WriteFile(passwd, append(append([]byte(nil), origPasswd...), entry...), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(conf, edited, st.Mode().Perm()); err != nil {
		t.Fatal(err)
	}
}
