package sockiter

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// ownSockets opens, for the test's length, sockets of several kinds and
// pairs enough that this process's records (~3,000 fds, 72 KB) are more
// than an iterator's seq_file holds for one task, and an O_PATH fd of a
// bound unix socket's path, which is no socket.
func ownSockets(t *testing.T, pairs int) {
	t.Helper()
	for range pairs {
		fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM, 0)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { unix.Close(fds[0]); unix.Close(fds[1]) })
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	uc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { uc.Close() })
	path := filepath.Join(t.TempDir(), "s")
	ul, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ul.Close() })
	op, err := unix.Open(path, unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(op) })
}

// own is what a pass says of this process: its sockets and its count of fds.
func own(t *testing.T, it *Iter) ([]Socket, int32) {
	t.Helper()
	socks, fds, err := it.List(context.Background(), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	mine, f := ownOf(socks, fds)
	return mine, f.N
}

// ownOf is this process's part of a pass: its sockets and its fds entry.
func ownOf(socks []Socket, fds []FDs) ([]Socket, FDs) {
	pid := int32(os.Getpid())
	var mine []Socket
	for _, s := range socks {
		if s.PID == pid {
			mine = append(mine, s)
		}
	}
	var f FDs
	for _, c := range fds {
		if c.PID == pid {
			f = c
		}
	}
	return mine, f
}

func loadWalk(t *testing.T, o Options) *Iter {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("loading a BPF iterator needs root (CAP_BPF and CAP_PERFMON)")
	}
	if why := Why(); why != "" {
		t.Skip(why)
	}
	it, err := LoadWalk(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { it.Close() })
	return it
}

func TestWalkListsWhatTaskFileLists(t *testing.T) {
	walk := loadWalk(t, Options{})
	if walk.Program() != "task_fds" {
		t.Fatalf("LoadWalk runs %s", walk.Program())
	}
	old, err := Load(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	ownSockets(t, 1500)
	a, an := own(t, walk)
	b, bn := own(t, old)
	if !slices.Equal(a, b) || an != bn {
		t.Errorf("this process: the fd walk lists %d sockets of %d fds, the task_file iterator %d of %d", len(a), an, len(b), bn)
		for i := range min(len(a), len(b)) {
			if a[i] != b[i] {
				t.Errorf("first difference: %+v against %+v", a[i], b[i])
				break
			}
		}
	}
	if len(a) < 3003 {
		t.Errorf("the fd walk lists %d sockets of this process, want at least 3,003", len(a))
	}
}

func TestWalkRingFull(t *testing.T) {
	ownSockets(t, 1500)
	small := loadWalk(t, Options{walkRecords: 1000})
	if _, _, err := small.List(context.Background(), nil, nil); !errors.Is(err, ErrWalkFull) {
		t.Errorf("a pass of ~3,000 fds into an array of 1,000: %v, want ErrWalkFull", err)
	}
	// Each pass starts from zero.
	if _, _, err := small.List(context.Background(), nil, nil); !errors.Is(err, ErrWalkFull) {
		t.Errorf("the second pass: %v, want ErrWalkFull", err)
	}
	if n := recordsFor(100_000); n != 200_000 {
		t.Errorf("recordsFor(100,000 files) = %d, want 200,000", n)
	}
	if n := recordsFor(0); n != minRecords {
		t.Errorf("recordsFor(0) = %d, want %d", n, minRecords)
	}
}

// Two processes share a pinned fd walk: a pass killed before it read its
// records leaves nothing to the next, and passes at once take turns.
func TestWalkPinnedShared(t *testing.T) {
	dir := filepath.Join(bpffs(t), "picket")
	ownSockets(t, 200)
	first := loadWalk(t, Options{Kernel: NewKernel(), PinDir: dir})
	if first.How() != HowPinned {
		t.Fatalf("first load: %s", first.How())
	}
	want, wantN := own(t, first)
	// A pass run and never read.
	var none [recordSize]byte
	if err := readRecords(context.Background(), first.a.link, none[:], recordSize, func([]byte) {}); err != nil {
		t.Fatal(err)
	}
	second := loadWalk(t, Options{PinDir: dir})
	if second.How() != HowReused {
		t.Fatalf("second load: %s", second.How())
	}
	var wg sync.WaitGroup
	for _, it := range []*Iter{first, second, first, second} {
		wg.Go(func() {
			socks, fds, err := it.List(context.Background(), nil, nil)
			if err != nil {
				t.Error(err)
				return
			}
			got, f := ownOf(socks, fds)
			n := f.N
			// The second Iter's own fds (its maps, its ring, the
			// lock) and the passes' are more fds, not more sockets.
			if !slices.Equal(got, want) || n < wantN {
				t.Errorf("a pass from the pin lists %d sockets of %d fds, the first %d of %d", len(got), n, len(want), wantN)
			}
		})
	}
	wg.Wait()
	if Pinned(dir) {
		t.Error("Pinned without the task iterator's pin")
	}
	tasks, err := LoadTasks(Options{PinDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	tasks.Close()
	if !Pinned(dir) {
		t.Error("not Pinned with the fd walk's and the task iterator's pins")
	}
}

// Told the host's network namespace, the fd walk counts the sockets its
// dumps list and lists the others: for this process's static set (~3,000
// unix sockets, TCP listeners, bound UDP, an unbound TCP and UDP socket,
// a netlink socket, a UDP-Lite one; Go's own listener is MPTCP, whose
// socket no TCP dump lists), what it counts and what it lists are
// what a pass that lists everything says, socket for socket.
func TestWalkCountsHashed(t *testing.T) {
	walk := loadWalk(t, Options{})
	ownSockets(t, 1500)
	for _, s := range [][3]int{
		{unix.AF_INET, unix.SOCK_STREAM, 0},                      // unbound: in no table
		{unix.AF_INET6, unix.SOCK_DGRAM, 0},                      // unbound
		{unix.AF_NETLINK, unix.SOCK_RAW, unix.NETLINK_ROUTE},     // no dump of picket's lists it
		{unix.AF_INET, unix.SOCK_DGRAM, unix.IPPROTO_UDPLITE},    // not the UDP table's
		{unix.AF_INET6, unix.SOCK_STREAM | unix.SOCK_CLOEXEC, 0}, // bound below
		{unix.AF_UNIX, unix.SOCK_DGRAM | unix.SOCK_CLOEXEC, 0},   // hashed unbound
	} {
		fd, err := unix.Socket(s[0], s[1]|unix.SOCK_CLOEXEC, s[2])
		if err != nil {
			t.Logf("socket(%d, %d, %d): %v", s[0], s[1], s[2], err)
			continue
		}
		t.Cleanup(func() { unix.Close(fd) })
		if s[0] == unix.AF_INET6 && s[1]&unix.SOCK_STREAM != 0 {
			if err := unix.Bind(fd, &unix.SockaddrInet6{Addr: [16]byte{15: 1}}); err != nil {
				t.Fatal(err)
			}
			if err := unix.Listen(fd, 1); err != nil {
				t.Fatal(err)
			}
		}
	}
	ns, err := os.Stat("/proc/self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	host := uint32(ns.Sys().(*syscall.Stat_t).Ino)

	all, allN := own(t, walk)
	var want Counts
	var listed []Socket
	for _, s := range all {
		counted := s.Hashed && s.NetNS == host
		switch {
		case !counted:
		case s.Family == unix.AF_UNIX:
			want.Unix++
		case (s.Family == unix.AF_INET || s.Family == unix.AF_INET6) && s.Type == unix.SOCK_STREAM && s.Protocol == unix.IPPROTO_TCP:
			want.TCP++
		case (s.Family == unix.AF_INET || s.Family == unix.AF_INET6) && s.Type == unix.SOCK_DGRAM && s.Protocol == unix.IPPROTO_UDP:
			want.UDP++
		default:
			counted = false
		}
		if !counted {
			listed = append(listed, s)
		}
	}
	if want.Unix < 3001 || want.TCP < 1 || want.UDP < 1 || len(listed) < 4 {
		t.Fatalf("the test's own sockets: %+v counted, %d listed (%+v): want ≥3,001 unix, 1 TCP, 1 UDP, 4 listed", want, len(listed), listed)
	}

	walk.CountHashed(host)
	socks, fds, err := walk.List(context.Background(), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	got, f := ownOf(socks, fds)
	if !slices.Equal(got, listed) {
		t.Errorf("counting, the walk lists %d sockets of this process, want %d: %+v", len(got), len(listed), got)
	}
	if f.N != allN || f.Counted != want {
		t.Errorf("counting, the walk says %d fds, %+v counted; listing all, %d fds and %+v", f.N, f.Counted, allN, want)
	}
	// 0 lists everything again.
	walk.CountHashed(0)
	if again, n := own(t, walk); !slices.Equal(again, all) || n != allN {
		t.Errorf("CountHashed(0): %d sockets of %d fds, want %d of %d", len(again), n, len(all), allN)
	}
}
