package collect

import (
	"bufio"
	"bytes"
	"os"
	"strconv"
	"time"
)

// userTable resolves uids to names from ROOT/etc/passwd. The binary is static
// (CGO_ENABLED=0), so NSS modules (LDAP, sssd) are not consulted: a uid with
// no line in passwd is shown as its number, which is what ps does too when
// it cannot resolve a name. os/user is not used because it cannot read a
// passwd file under --root.
type userTable struct {
	path  string
	names map[uint32]string
	mtime time.Time
}

func newUserTable(path string) *userTable {
	return &userTable{path: path, names: map[uint32]string{}}
}

// refresh re-reads passwd when it changed, at most once per collection.
func (t *userTable) refresh() {
	fi, err := os.Stat(t.path)
	if err != nil {
		return
	}
	if fi.ModTime().Equal(t.mtime) && len(t.names) > 0 {
		return
	}
	b, err := os.ReadFile(t.path)
	if err != nil {
		return
	}
	names := map[uint32]string{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		// name:passwd:uid:gid:gecos:home:shell
		f := bytes.SplitN(sc.Bytes(), []byte(":"), 4)
		if len(f) < 4 || len(f[0]) == 0 || f[0][0] == '#' {
			continue
		}
		uid, err := strconv.ParseUint(string(f[2]), 10, 32)
		if err != nil {
			continue
		}
		if _, dup := names[uint32(uid)]; !dup { // first line wins, as getpwuid
			names[uint32(uid)] = string(f[0])
		}
	}
	t.names = names
	t.mtime = fi.ModTime()
}

func (t *userTable) name(uid uint32) string {
	if n, ok := t.names[uid]; ok {
		return n
	}
	return strconv.FormatUint(uint64(uid), 10)
}
