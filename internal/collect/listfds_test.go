package collect

import (
	"os"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestListFDsSparse: listFDs finds every fd and every socket of a process
// whatever the shape of its fd table: dense, or with gaps that make it
// switch from probing fd numbers to getdents.
func TestListFDsSparse(t *testing.T) {
	var st unix.Stat_t
	if err := unix.Stat("/proc/self/fd", &st); err != nil {
		t.Skipf("no /proc: %v", err)
	}
	// Sockets, some of them moved up past a gap of absent fd numbers.
	var opened []int
	t.Cleanup(func() {
		for _, fd := range opened {
			unix.Close(fd)
		}
	})
	for i, high := range []int{0, 0, 700, 701, 900} {
		p, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		opened = append(opened, p[0], p[1])
		if high > 0 {
			if err := unix.Dup3(p[1], high, unix.O_CLOEXEC); err != nil {
				t.Fatalf("dup3 %d: %v", i, err)
			}
			opened = append(opened, high)
		}
	}
	want, wantSocks := 0, map[int]bool{}
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	dfd, err := unix.Open("/proc/self/fd", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(dfd)
	for _, e := range ents {
		fd, _ := strconv.Atoi(e.Name())
		if l, err := os.Readlink("/proc/self/fd/" + e.Name()); err == nil {
			want++
			if strings.HasPrefix(l, "socket:[") {
				wantSocks[fd] = true
			}
		}
	}
	// The listing counted its own directory fd, which dfd now stands in for.
	if err := unix.Fstat(dfd, &st); err != nil {
		t.Fatal(err)
	}
	for _, size := range []int64{st.Size, 0} { // 0: a kernel before 6.2
		if _, err := unix.Seek(dfd, 0, 0); err != nil {
			t.Fatal(err)
		}
		c, _ := New(Options{})
		w := newProcScanner(c).worker(0)
		got := w.listFDs(dfd, size)
		gotSocks := map[int]bool{}
		for _, sr := range w.socks {
			gotSocks[int(sr.fd)] = true
		}
		if got != want || len(gotSocks) != len(wantSocks) {
			t.Errorf("size %d: %d fds, sockets %v; want %d fds, sockets %v", size, got, gotSocks, want, wantSocks)
		}
		for fd := range wantSocks {
			if !gotSocks[fd] {
				t.Errorf("size %d: socket fd %d not found", size, fd)
			}
		}
	}
}
