package act

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/picket-guard/picket/internal/hostcap"
)

func TestArchive(t *testing.T) {
	for _, v := range hostVariants(t, hostcap.Openat2) {
		t.Run(v.name, func(t *testing.T) { testArchive(t, v.host) })
	}
}

// testArchive is TestArchive on a host as host describes it.
func testArchive(t *testing.T, host *hostcap.Set) {
	base := t.TempDir()
	mail := filepath.Join(base, "mail")
	arc := filepath.Join(mail, "arc")
	os.MkdirAll(arc, 0o755)
	src := filepath.Join(mail, "alice")
	if err := os.WriteFile(src, []byte("From alice\n\nhello\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	os.Chmod(src, 0o620)
	if os.Geteuid() == 0 {
		os.Chown(src, 65534, 8)
	}
	mtime := time.Date(2000, 4, 28, 10, 0, 0, 123456789, time.UTC)
	atime := time.Date(2000, 4, 29, 11, 0, 0, 0, time.UTC)
	os.Chtimes(src, atime, mtime)

	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	state := t.TempDir()
	r := newRunner(t, Options{StateDir: state, Host: host, Now: func() time.Time { return now }})
	spec := &ArchiveSpec{Path: src, To: arc, Roots: []string{mail}}
	do := func(s *ArchiveSpec, dry bool) Result {
		return r.Do(t.Context(), Request{Spec: s, Rule: "ProcNumChkRed", DryRun: dry})
	}

	if res := do(spec, true); !strings.HasPrefix(res.Result, "would copy") || res.ID != "" {
		t.Errorf("dry run: %+v", res)
	}
	if ents, _ := os.ReadDir(arc); len(ents) != 0 {
		t.Fatalf("dry run wrote %v", ents)
	}

	var s0, s1 syscall.Stat_t
	syscall.Stat(src, &s0)
	res := do(spec, false)
	if res.Error != "" {
		t.Fatalf("archive: %+v", res)
	}
	dst := filepath.Join(arc, "alice.20260102T030405Z")
	if len(res.Targets) != 2 || res.Targets[1] != dst {
		t.Errorf("targets %v, want [%s %s]", res.Targets, src, dst)
	}
	if err := syscall.Stat(dst, &s1); err != nil {
		t.Fatal(err)
	}
	if s1.Mode != s0.Mode || s1.Uid != s0.Uid || s1.Gid != s0.Gid || s1.Mtim != s0.Mtim || s1.Atim != s0.Atim {
		t.Errorf("not preserved: src mode %o %d:%d mtime %v atime %v; copy mode %o %d:%d mtime %v atime %v",
			s0.Mode, s0.Uid, s0.Gid, s0.Mtim, s0.Atim, s1.Mode, s1.Uid, s1.Gid, s1.Mtim, s1.Atim)
	}
	if b, _ := os.ReadFile(dst); string(b) != "From alice\n\nhello\n" {
		t.Errorf("content %q", b)
	}
	var s2 syscall.Stat_t
	if syscall.Stat(src, &s2); os.Geteuid() == 0 && s2.Atim != s0.Atim {
		t.Errorf("archiving changed the spool's atime (mail readers take it for read): %v -> %v", s0.Atim, s2.Atim)
	}
	if got := phases(journalOf(t, state), res.ID); strings.Join(got, ",") != "intent,result" {
		t.Errorf("journal phases %v", got)
	}

	// Same second again: a new name, the first copy untouched.
	os.WriteFile(src, []byte("changed"), 0o600)
	res = do(spec, false)
	if res.Error != "" || res.Targets[1] != dst+"-1" {
		t.Errorf("second archive: %+v", res)
	}
	if b, _ := os.ReadFile(dst); string(b) != "From alice\n\nhello\n" {
		t.Errorf("the first copy was overwritten: %q", b)
	}
	// No temporary file is left behind.
	ents, _ := os.ReadDir(arc)
	for _, e := range ents {
		if strings.Contains(e.Name(), "picket-tmp") {
			t.Errorf("left %s", e.Name())
		}
	}

	outside := filepath.Join(base, "outside")
	os.WriteFile(outside, []byte("secret"), 0o600)
	os.Symlink(outside, filepath.Join(mail, "evil"))
	os.Symlink(base, filepath.Join(mail, "arclink"))
	syscall.Mkfifo(filepath.Join(mail, "fifo"), 0o600)
	refused := []*ArchiveSpec{
		{Path: filepath.Join(mail, "evil"), To: arc, Roots: []string{mail}},                 // a symlink
		{Path: mail + "/../outside", To: arc, Roots: []string{mail}},                        // user "../outside"
		{Path: mail + "/../../" + outside, To: arc, Roots: []string{mail}},                  // deeper
		{Path: outside, To: arc, Roots: []string{mail}},                                     // outside the roots
		{Path: src, To: filepath.Join(mail, "arclink"), Roots: []string{mail}},              // archive dir through a symlink
		{Path: src, To: base, Roots: []string{mail}},                                        // archive dir outside
		{Path: filepath.Join(mail, "fifo"), To: arc, Roots: []string{mail}, IfExists: true}, // not a regular file (and no hang)
	}
	for _, s := range refused {
		res := do(s, false)
		if !strings.HasPrefix(res.Result, "refused") || res.ID != "" {
			t.Errorf("%s -> %s: %+v", s.Path, s.To, res)
		}
	}
	if ents2, _ := os.ReadDir(arc); len(ents2) != len(ents) {
		t.Errorf("a refused archive wrote something: %d entries, had %d", len(ents2), len(ents))
	}
	if ents, _ := os.ReadDir(base); len(ents) != 2 { // mail and outside
		t.Errorf("something was written outside the root: %v", ents)
	}

	res = do(&ArchiveSpec{Path: filepath.Join(mail, ".bob.pop"), To: arc, Roots: []string{mail}, IfExists: true}, false)
	if !strings.HasPrefix(res.Result, "nothing to archive") || res.Error != "" {
		t.Errorf("if_exists on a missing file: %+v", res)
	}
	res = do(&ArchiveSpec{Path: filepath.Join(mail, ".bob.pop"), To: arc, Roots: []string{mail}}, false)
	if res.Error == "" {
		t.Errorf("a missing file without if_exists: %+v", res)
	}
}

// TestArchiveHostileName: a user name chosen by whoever ran a process
// (`$(touch FILE)`, a newline) is only ever a file name.
func TestArchiveHostileName(t *testing.T) {
	mail := t.TempDir()
	os.Mkdir(filepath.Join(mail, "arc"), 0o755)
	marker := "pkt-pwned-" + randHex() // a shell would create it in its working directory
	for _, user := range []string{"$(touch " + marker + ")", "`touch " + marker + "`\nSubject: x", "a\nb"} {
		if err := os.WriteFile(filepath.Join(mail, user), []byte("mail of "+user), 0o600); err != nil {
			t.Fatal(err)
		}
		r := newRunner(t, Options{})
		res := r.Do(t.Context(), Request{Spec: &ArchiveSpec{Path: filepath.Join(mail, user), To: filepath.Join(mail, "arc"), Roots: []string{mail}}})
		if res.Error != "" || len(res.Targets) != 2 {
			t.Fatalf("%q: %+v", user, res)
		}
		if b, err := os.ReadFile(res.Targets[1].(string)); err != nil || string(b) != "mail of "+user {
			t.Errorf("%q: copy %q %v", user, b, err)
		}
	}
	for _, p := range []string{marker, "/" + marker, filepath.Join(mail, marker), filepath.Join(mail, "arc", marker)} {
		if _, err := os.Stat(p); err == nil {
			os.Remove(p)
			t.Fatal("a name was executed")
		}
	}
}

// smallFS mounts a tmpfs of size bytes for the test: a filesystem the test
// can fill.
func smallFS(t *testing.T, size int64) string {
	t.Helper()
	needRoot(t, "mounts a small tmpfs")
	dir := t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, fmt.Sprintf("size=%d,mode=0755", size)); err != nil {
		t.Skipf("cannot mount a tmpfs: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
	return dir
}

// writeAt writes n bytes of b at off in path (creating it).
func writeAt(t *testing.T, path string, off int64, n int, b byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(bytes.Repeat([]byte{b}, n), off); err != nil {
		t.Fatal(err)
	}
}

// TestArchiveSparseAndBounded: a 1 GiB sparse mailbox (2 MiB of data)
// archives into a 64 MiB filesystem as 2 MiB, holes kept; a file whose
// copy would leave the filesystem less than its reserve, or with more
// data than max_bytes, is refused, nothing written; a copy ends with the
// action's context.
func TestArchiveSparseAndBounded(t *testing.T) {
	fs := smallFS(t, 64<<20)
	arc := filepath.Join(fs, "arc")
	os.Mkdir(arc, 0o755)
	src := filepath.Join(fs, "alice")
	writeAt(t, src, 0, 1<<20, 'a')
	writeAt(t, src, 512<<20, 1<<20, 'b')
	if err := os.Truncate(src, 1<<30); err != nil {
		t.Fatal(err)
	}
	r := newRunner(t, Options{StateDir: t.TempDir()})
	res := r.Do(t.Context(), Request{Spec: &ArchiveSpec{Path: src, To: arc, Roots: []string{fs}}})
	if res.Error != "" || len(res.Targets) != 2 {
		t.Fatalf("sparse 1 GiB into 64 MiB: %+v", res)
	}
	dst := res.Targets[1].(string)
	var st unix.Stat_t
	if err := unix.Stat(dst, &st); err != nil {
		t.Fatal(err)
	}
	if st.Size != 1<<30 || st.Blocks*512 > 3<<20 {
		t.Errorf("copy: size %d, %d bytes allocated; want 1 GiB apparent, about 2 MiB allocated", st.Size, st.Blocks*512)
	}
	t.Logf("1 GiB sparse file archived with %d bytes allocated", st.Blocks*512)
	f, _ := os.Open(dst)
	got := make([]byte, 3)
	f.ReadAt(got[:1], 0)
	f.ReadAt(got[1:2], 512<<20+(1<<20)-1)
	f.ReadAt(got[2:], 700<<20)
	f.Close()
	if string(got) != "ab\x00" {
		t.Errorf("copied content %q, want \"ab\\x00\"", got)
	}
	os.Remove(dst)

	// 48 MiB of data on disk into the 64 MiB tmpfs (2 MiB used): it fits,
	// but would leave less than the 16 MiB kept free.
	big := filepath.Join(t.TempDir(), "bob")
	writeAt(t, big, 0, 48<<20, 'c')
	roots := []string{filepath.Dir(big), fs}
	res = r.Do(t.Context(), Request{Spec: &ArchiveSpec{Path: big, To: arc, Roots: roots}})
	if !strings.Contains(res.Error, "kept free") || res.ID != "" {
		t.Errorf("archive past the reserve: %+v", res)
	}
	res = r.Do(t.Context(), Request{Spec: &ArchiveSpec{Path: big, To: arc, Roots: roots, MaxBytes: 1 << 20}})
	if !strings.Contains(res.Error, "max_bytes") {
		t.Errorf("archive past max_bytes: %+v", res)
	}
	if ents, _ := os.ReadDir(arc); len(ents) != 0 {
		t.Errorf("refused archives left %v", ents)
	}

	// The action's context: one that has ended (its timeout passed) stops
	// the copy at its next chunk, and the temporary file goes.
	disk := filepath.Join(t.TempDir(), "arc")
	os.Mkdir(disk, 0o755)
	ctx, cancel := context.WithDeadline(t.Context(), time.Now())
	defer cancel()
	res = newRunner(t, Options{StateDir: t.TempDir()}).Do(ctx, Request{Spec: &ArchiveSpec{Path: big, To: disk, Roots: []string{filepath.Dir(big), filepath.Dir(disk)}}})
	if !strings.Contains(res.Error, "deadline") {
		t.Errorf("archive past its timeout: %+v", res)
	}
	if ents, _ := os.ReadDir(disk); len(ents) != 0 {
		t.Errorf("an archive past its timeout left %v", ents)
	}
}
