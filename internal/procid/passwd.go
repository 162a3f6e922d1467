package procid

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/picket-guard/picket/internal/proctext"
)

// Users is the account table of ROOT/etc/passwd and ROOT/etc/group, read
// again whenever either file changes. It is safe for concurrent use.
//
// The binary is static (CGO_ENABLED=0), so NSS modules (LDAP, sssd) are not
// consulted: a uid with no line in passwd is shown as its number, which is
// what ps does too when it cannot resolve a name, unless a Resolver is set
// (Resolve): then such a uid is named, from a later look on, by the name
// service switch. os/user is not used because it cannot read the files of
// a root other than "/".
type Users struct {
	passwd, group string
	nss           *Resolver

	mu     sync.Mutex
	cur    *Accounts
	pv, gv fileVersion
}

// NewUsers returns the table of root/etc/passwd and root/etc/group; nothing
// is read before the first call of Accounts.
func NewUsers(root string) *Users {
	return &Users{
		passwd: filepath.Join(root, "etc", "passwd"),
		group:  filepath.Join(root, "etc", "group"),
		cur:    &Accounts{names: map[uint32]string{}},
	}
}

// Resolve names the uids passwd does not know through r (nil: never).
// Only for the host's own root: the name service is the host's.
func (u *Users) Resolve(r *Resolver) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.nss = r
	next := *u.cur
	next.nss = r
	u.cur = &next
}

// fileVersion tells one state of a file from another without reading it.
// The change time is part of it because an edit may keep the size and set
// the modification time back (touch -r, an editor keeping it), never ctime.
type fileVersion struct {
	ok           bool
	ino          uint64
	size         int64
	mtime, ctime syscall.Timespec
}

func versionOf(path string) (fileVersion, bool) {
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		return fileVersion{}, false
	}
	return fileVersion{ok: true, ino: st.Ino, size: st.Size, mtime: st.Mtim, ctime: st.Ctim}, true
}

// Accounts returns the table as the files are now: one stat of each, and
// a new reading only when one of them changed since the last call (an
// account added or renamed shows at the next call). A file that cannot be
// read keeps what was read of it last, so that names do not turn into
// numbers on a host too sick to open a file; never read, it is empty.
func (u *Users) Accounts() *Accounts {
	pv, pok := versionOf(u.passwd)
	gv, gok := versionOf(u.group)
	u.mu.Lock()
	defer u.mu.Unlock()
	if (!pok || pv == u.pv) && (!gok || gv == u.gv) {
		return u.cur
	}
	next := *u.cur
	next.nss = u.nss
	if pok && pv != u.pv {
		if b, err := os.ReadFile(u.passwd); err == nil {
			next.accounts, next.names = parsePasswd(b)
			u.pv = pv
		}
	}
	if gok && gv != u.gv {
		if b, err := os.ReadFile(u.group); err == nil {
			next.groups = parseGroup(b)
			u.gv = gv
		}
	}
	u.cur = &next
	return u.cur
}

// Accounts is one reading of passwd and group. It is never changed once
// made, so it can be used while the Users it came from reads a newer one.
type Accounts struct {
	accounts []account         // passwd, in file order
	names    map[uint32]string // uid -> name of its first line, as getpwuid
	groups   []group
	nss      *Resolver // names of the uids passwd does not list; nil: none
}

// account is one line of passwd: name:password:uid:gid:gecos:home:shell.
type account struct {
	name string
	uid  uint32
	gid  int64 // -1 when the field is not a number
}

// group is one line of group: name:password:gid:member,member...
type group struct {
	name    string
	gid     int64 // -1 when the field is not a number
	members []string
}

// Name is the name of uid, or the uid in decimal when passwd has no line
// for it and the name service (if asked) has not named it yet.
func (a *Accounts) Name(uid uint32) string {
	if n, ok := a.names[uid]; ok {
		return n
	}
	if a.nss != nil {
		if n, ok := a.nss.Name(uid); ok {
			return n
		}
	}
	return strconv.FormatUint(uint64(uid), 10)
}

// Lookup resolves a user name, or a uid in decimal, to a uid; the first
// line with that name wins, as getpwnam. A name is looked up first, as
// chown(1) does: a user may be called "2024" (NIS and LDAP sites number
// their logins) and its processes' rows say user=2024, which must select
// that user, not uid 2024. "+N" is uid N whatever names exist.
func (a *Accounts) Lookup(user string) (uint32, error) {
	if n, ok := strings.CutPrefix(user, "+"); ok {
		if id, err := strconv.ParseUint(n, 10, 32); err == nil {
			return uint32(id), nil
		}
	}
	for _, ac := range a.accounts {
		if ac.name == user {
			return ac.uid, nil
		}
	}
	// Then a name the name service gave a uid picket has seen (an LDAP
	// or sssd user whose processes the rows name): no fork here.
	if a.nss != nil {
		if uid, ok := a.nss.UID(user); ok {
			return uid, nil
		}
	}
	if n, err := strconv.ParseUint(user, 10, 32); err == nil {
		return uint32(n), nil
	}
	return 0, fmt.Errorf("unknown user %q", user)
}

// LookupNow is Lookup, then, for a name passwd and the cache do not have,
// a question to the name service (a fork of getent, bounded): for loading
// a configuration, not for a look or an action.
func (a *Accounts) LookupNow(ctx context.Context, user string) (uint32, error) {
	uid, err := a.Lookup(user)
	if err == nil || a.nss == nil {
		return uid, err
	}
	uid, ok, nerr := a.nss.LookupName(ctx, user)
	if nerr != nil {
		return 0, fmt.Errorf("unknown user %q (the name service did not answer: %w)", user, nerr)
	}
	if !ok {
		return 0, err
	}
	return uid, nil
}

// InGroups is the uids of every account in one of the named groups, by
// primary gid or by the group's member list.
func (a *Accounts) InGroups(groups []string) map[uint32]bool {
	gids := map[int64]bool{}
	members := map[string]bool{}
	for _, g := range a.groups {
		for _, want := range groups {
			if g.name != want {
				continue
			}
			if g.gid >= 0 {
				gids[g.gid] = true
			}
			for _, m := range g.members {
				members[m] = true
			}
		}
	}
	out := map[uint32]bool{}
	for _, ac := range a.accounts {
		if (ac.gid >= 0 && gids[ac.gid]) || members[ac.name] {
			out[ac.uid] = true
		}
	}
	return out
}

// parsePasswd reads passwd's lines with a name and a numeric uid; others
// (comments, NIS "+" lines, garbage) are skipped, as getpwent skips them.
func parsePasswd(b []byte) ([]account, map[uint32]string) {
	var out []account
	names := map[uint32]string{}
	eachEntry(b, func(f []string) {
		if len(f) < 4 || f[0] == "" {
			return
		}
		uid, err := strconv.ParseUint(f[2], 10, 32)
		if err != nil {
			return
		}
		gid, err := strconv.ParseUint(f[3], 10, 32)
		ac := account{name: f[0], uid: uint32(uid), gid: int64(gid)}
		if err != nil {
			ac.gid = -1
		}
		out = append(out, ac)
		if _, dup := names[ac.uid]; !dup {
			names[ac.uid] = ac.name
		}
	})
	return out, names
}

func parseGroup(b []byte) []group {
	var out []group
	eachEntry(b, func(f []string) {
		if len(f) < 4 || f[0] == "" {
			return
		}
		g := group{name: f[0], gid: -1}
		if gid, err := strconv.ParseUint(f[2], 10, 32); err == nil {
			g.gid = int64(gid)
		}
		for _, m := range strings.Split(f[3], ",") {
			if m != "" {
				g.members = append(g.members, m)
			}
		}
		out = append(out, g)
	})
	return out
}

// eachEntry calls fn with the ':'-separated fields of each line of b that
// is neither empty nor a comment.
func eachEntry(b []byte, fn func([]string)) {
	for len(b) > 0 {
		var l []byte
		l, b = proctext.Line(b)
		if len(l) == 0 || l[0] == '#' {
			continue
		}
		fn(strings.Split(string(l), ":"))
	}
}
