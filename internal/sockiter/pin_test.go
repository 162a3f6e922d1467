package sockiter

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// bpffs mounts a BPF filesystem of the test's own on a temporary
// directory (each mount of bpffs is a new, empty instance) and returns it.
func bpffs(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("loading a BPF iterator and mounting a BPF filesystem need root")
	}
	if why := Why(); why != "" {
		t.Skip(why)
	}
	dir := t.TempDir()
	if err := unix.Mount("bpf", dir, "bpf", 0, "mode=0700"); err != nil {
		t.Fatalf("mount a BPF filesystem on %s: %v", dir, err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	return dir
}

// socketPair opens a unix socket pair for the test's length: a quiet host
// may have no socket held by any process.
func socketPair(t *testing.T) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fds[0]); unix.Close(fds[1]) })
}

func TestPinLoadedThenReused(t *testing.T) {
	dir := filepath.Join(bpffs(t), "picket")
	socketPair(t)
	o := Options{Kernel: NewKernel(), PinDir: dir}
	if Pinned(dir) {
		t.Fatal("Pinned before anything was pinned")
	}
	it, err := Load(o)
	if err != nil {
		t.Fatal(err)
	}
	tasks, err := LoadTasks(o)
	if err != nil {
		it.Close()
		t.Fatal(err)
	}
	if it.How() != HowPinned || tasks.How() != HowPinned || filepath.Dir(it.Pin()) != dir {
		t.Errorf("first load: %q at %q, tasks %q", it.How(), it.Pin(), tasks.How())
	}
	first, _, err := it.List(context.Background(), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	it.Close()
	tasks.Close()
	if !Pinned(dir) {
		t.Fatal("not Pinned after both loads")
	}
	// The pins outlive the programs' loader, root's alone.
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil || st.Mode&0o777 != 0o700 {
		t.Errorf("pin directory mode %#o (%v), want 0700", st.Mode&0o777, err)
	}
	if err := unix.Stat(filepath.Join(dir, pinName("task_sockets", _TaskFileBytes)), &st); err != nil || st.Mode&0o777 != 0o600 {
		t.Errorf("pin mode %#o (%v), want 0600", st.Mode&0o777, err)
	}

	// Another process (here: no Kernel at all, so nothing to relocate
	// against) opens them.
	again, err := Load(Options{PinDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	tasks2, err := LoadTasks(Options{PinDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer tasks2.Close()
	if again.How() != HowReused || tasks2.How() != HowReused {
		t.Errorf("second load: %q, tasks %q; want %q", again.How(), tasks2.How(), HowReused)
	}
	second, _, err := again.List(context.Background(), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	own := func(l []Socket) int {
		n := 0
		for _, s := range l {
			if s.PID == int32(os.Getpid()) {
				n++
			}
		}
		return n
	}
	if own(second) != own(first) || own(second) < 2 {
		t.Errorf("the reused iterator lists %d sockets (%d this process's), the loaded one %d (%d)", len(second), own(second), len(first), own(first))
	}
	tl, err := tasks2.List(context.Background(), nil)
	if err != nil || len(tl) == 0 {
		t.Errorf("the reused task iterator: %d tasks, %v", len(tl), err)
	}
}

// Pins of other builds (another hash) are removed but the newest; a pin
// that runs another program, or a directory others may write to, is not
// used.
func TestPinRefusesWhatIsNotItsOwn(t *testing.T) {
	fs := bpffs(t)
	socketPair(t)
	dir := filepath.Join(fs, "picket")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	plain, err := Load(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	stale := filepath.Join(dir, "task_sockets-0123456789abcdef")
	recent := filepath.Join(dir, "task_sockets-fedcba9876543210")
	for i, p := range []string{stale, recent} {
		if err := plain.a.link.Pin(p); err != nil {
			t.Fatal(err)
		}
		at := time.Now().Add(time.Duration(i-2) * time.Hour)
		if err := os.Chtimes(p, at, at); err != nil {
			t.Fatal(err)
		}
	}
	it, err := Load(Options{PinDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	it.Close()
	if _, err := os.Lstat(stale); !os.IsNotExist(err) {
		t.Errorf("an older build's pin is still there: %v", err)
	}
	if _, err := os.Lstat(recent); err != nil {
		t.Errorf("the newest other build's pin was removed: %v", err)
	}
	if it.How() != HowPinned {
		t.Errorf("how %q", it.How())
	}

	// The task program pinned where the task_file one belongs.
	wrong := filepath.Join(fs, "wrong")
	if err := os.Mkdir(wrong, 0o700); err != nil {
		t.Fatal(err)
	}
	tasks, err := LoadTasks(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer tasks.Close()
	if err := tasks.a.link.Pin(filepath.Join(wrong, pinName("task_sockets", _TaskFileBytes))); err != nil {
		t.Fatal(err)
	}
	it, err = Load(Options{PinDir: wrong})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(it.How(), HowLoaded+", not pinned: ") || !strings.Contains(it.How(), `runs "task_info"`) {
		t.Errorf("a pin of the wrong program: %q", it.How())
	}
	if l, _, err := it.List(context.Background(), nil, nil); err != nil || len(l) == 0 {
		t.Errorf("the iterator loaded instead: %d sockets, %v", len(l), err)
	}
	it.Close()

	// A directory others may write to.
	open := filepath.Join(fs, "open")
	if err := os.Mkdir(open, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(open, 0o777); err != nil {
		t.Fatal(err)
	}
	it, err = Load(Options{PinDir: open})
	if err != nil {
		t.Fatal(err)
	}
	it.Close()
	if !strings.Contains(it.How(), "is not picket's own") || it.Pin() != "" {
		t.Errorf("a world-writable pin directory: %q at %q", it.How(), it.Pin())
	}
	if ents, _ := os.ReadDir(open); len(ents) != 0 {
		t.Errorf("pinned in a world-writable directory: %v", ents)
	}
}

// On a directory that is no BPF filesystem nothing is pinned, and the
// iterator still loads.
func TestPinNotOnBPFFS(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("loading a BPF iterator needs root")
	}
	if why := Why(); why != "" {
		t.Skip(why)
	}
	dir := filepath.Join(t.TempDir(), "picket")
	it, err := Load(Options{PinDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	if !strings.HasPrefix(it.How(), HowLoaded+", not pinned: pin ") || it.Pin() != "" {
		t.Errorf("on %s: %q at %q", dir, it.How(), it.Pin())
	}
}
