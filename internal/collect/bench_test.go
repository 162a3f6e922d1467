package collect

import (
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"unsafe"

	"github.com/prometheus/procfs"
	"golang.org/x/sys/unix"

	"github.com/picket-guard/picket/internal/procid"
)

// Benchmarks of the collector on the live system, under a socket load.
//
// By default the benchmark binary opens the load itself, once: about
// PICKET_BENCH_SOCKETS sockets (default 10000; unix pairs, UDP bound on
// 127.0.0.1, a few unbound UDP, TCP loopback connections with a listener).
// Under scripts/bench-snapshot's bigger load (3,000 processes, 31,000
// sockets in six holders) set PICKET_BENCH_SOCKETS=0:
//
//	scripts/bench-snapshot -then env PICKET_BENCH_SOCKETS=0 go test -run '^$' -bench . ./internal/collect/
//
// These are benchmarks, never timed tests: docs/benchmarks.md has the
// numbers and what they decided.

var (
	benchLoadOnce sync.Once
	benchLoadErr  error
)

func benchLoad(b *testing.B) {
	b.Helper()
	if os.Getenv("CI") != "" && os.Getenv("PICKET_BENCH_SOCKETS") == "" {
		// go test -bench under CI: keep the load small.
		os.Setenv("PICKET_BENCH_SOCKETS", "1000")
	}
	benchLoadOnce.Do(func() {
		n := 10000
		if v := os.Getenv("PICKET_BENCH_SOCKETS"); v != "" {
			var err error
			if n, err = strconv.Atoi(v); err != nil {
				benchLoadErr = err
				return
			}
		}
		benchLoadErr = openBenchLoad(n)
	})
	if benchLoadErr != nil {
		b.Fatalf("socket load: %v", benchLoadErr)
	}
}

// openBenchLoad opens about n sockets in this process and leaves them open
// until it exits: 40% unix (socketpairs), 25% UDP bound to 127.0.0.1, 1%
// unbound UDP, the rest TCP (a listener and connected pairs).
func openBenchLoad(n int) error {
	if n <= 0 {
		return nil
	}
	var rl unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &rl); err != nil {
		return err
	}
	if rl.Cur < rl.Max {
		rl.Cur = rl.Max
		if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &rl); err != nil {
			return err
		}
	}
	if uint64(n)+256 > rl.Cur {
		n = int(rl.Cur) - 256
	}
	lo := [4]byte{127, 0, 0, 1}
	for i := 0; i < n*20/100; i++ {
		if _, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0); err != nil {
			return err
		}
	}
	bound, unbound := n*25/100, n/100
	for i := 0; i < bound+unbound; i++ {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		if i < bound {
			if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: lo}); err != nil {
				return err
			}
		}
	}
	pairs := (n - 2*(n*20/100) - bound - unbound) / 2
	l, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	if err := unix.Bind(l, &unix.SockaddrInet4{Addr: lo}); err != nil {
		return err
	}
	if err := unix.Listen(l, 128); err != nil {
		return err
	}
	sa, err := unix.Getsockname(l)
	if err != nil {
		return err
	}
	for i := 0; i < pairs; i++ {
		c, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		if err := unix.Connect(c, sa); err != nil {
			return err
		}
		if _, _, err := unix.Accept4(l, unix.SOCK_CLOEXEC); err != nil {
			return err
		}
	}
	return nil
}

func liveCollector(b *testing.B, opts Options) *Collector {
	b.Helper()
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		b.Skip("no /proc")
	}
	c, err := New(opts)
	if err != nil {
		b.Fatal(err)
	}
	return c
}

// BenchmarkCollect is one whole snapshot, as `picket snapshot` takes it
// (sockets attributed and processes read by the BPF iterators where they
// load; they are loaded before the timing starts, as picket run keeps
// them).
func BenchmarkCollect(b *testing.B) { benchCollect(b, Full, Options{}) }

// BenchmarkCollectSocketsBPF attributes sockets by the task_file iterator
// but reads every process's stat, status and cgroup from /proc: the BPF
// path before the task iterator.
func BenchmarkCollectSocketsBPF(b *testing.B) {
	benchCollect(b, Full, Options{ProcOnlyProcesses: true})
}

// BenchmarkCollectProc is the same with the /proc walk's readlink per fd.
func BenchmarkCollectProc(b *testing.B) { benchCollect(b, Full, Options{ProcOnly: true}) }

// BenchmarkCollectLight is what picket run pays for a look when the rules
// due need no sockets: processes, groups and kernel counters.
func BenchmarkCollectLight(b *testing.B) { benchCollect(b, Light, Options{}) }

func benchCollect(b *testing.B, depth Depth, opts Options) {
	benchLoad(b)
	c := liveCollector(b, opts)
	defer c.Close()
	s, _ := c.Collect(context.Background(), depth)
	if depth == Full {
		b.Logf("collector %s %s, process collector %s %s", s.Collector, s.CollectorReason, s.ProcessCollector, s.ProcessCollectorReason)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		s, _ = c.Collect(context.Background(), depth)
	}
	b.ReportMetric(float64(s.Processes.Total), "procs")
	if !s.Light {
		b.ReportMetric(float64(s.Sockets.Totals.Sum()), "sockets")
	}
}

// BenchmarkOneShot is what `picket snapshot --json` does after its
// start-up: a new Collector (the iterator loaded where the host is busy
// enough), its first look, the encoding.
func BenchmarkOneShot(b *testing.B) {
	benchLoad(b)
	for _, m := range []struct {
		name string
		opts Options
	}{{"auto", Options{BPFMinFiles: OneShotMinFiles}}, {"proc", Options{ProcOnly: true}}} {
		b.Run(m.name, func(b *testing.B) {
			for b.Loop() {
				c := liveCollector(b, m.opts)
				s, _ := c.Collect(context.Background(), Full)
				enc := json.NewEncoder(io.Discard)
				enc.SetIndent("", "  ")
				if err := enc.Encode(s); err != nil {
					b.Fatal(err)
				}
				c.Close()
			}
		})
	}
}

// BenchmarkSnapshotJSON is Collect plus the encoding `picket snapshot
// --json` does.
func BenchmarkSnapshotJSON(b *testing.B) {
	benchLoad(b)
	c := liveCollector(b, Options{})
	b.ReportAllocs()
	for b.Loop() {
		s, _ := c.Collect(context.Background(), Full)
		enc := json.NewEncoder(io.Discard)
		enc.SetIndent("", "  ")
		if err := enc.Encode(s); err != nil {
			b.Fatal(err)
		}
	}
}

func livePids(b *testing.B) []int {
	b.Helper()
	ents, err := os.ReadDir("/proc")
	if err != nil {
		b.Skip(err)
	}
	var pids []int
	for _, e := range ents {
		if pid, err := strconv.Atoi(e.Name()); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids
}

// BenchmarkStat reads and parses /proc/PID/stat of every process: picket's
// hand-written reader (one openat+read into a reused buffer, parse in
// place) against procfs's Proc.Stat (os.ReadFile, fmt.Fscan). One op is
// the whole pid list; ns/proc is per process.
func BenchmarkStat(b *testing.B) {
	pids := livePids(b)
	b.Run("picket", func(b *testing.B) {
		procfd, err := unix.Open("/proc", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			b.Fatal(err)
		}
		defer unix.Close(procfd)
		buf := make([]byte, 4096)
		var rel []byte
		b.ReportAllocs()
		for b.Loop() {
			for _, pid := range pids {
				rel = append(strconv.AppendInt(rel[:0], int64(pid), 10), "/stat\x00"...)
				n, err := readAt(procfd, rel, buf)
				if err != nil {
					continue
				}
				var st procid.Stat
				if err := procid.ParseStat(buf[:n], &st); err != nil {
					b.Fatal(err)
				}
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(pids)), "ns/proc")
	})
	b.Run("procfs", func(b *testing.B) {
		fs, err := procfs.NewFS("/proc")
		if err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			for _, pid := range pids {
				p, err := fs.Proc(pid)
				if err != nil {
					continue
				}
				if _, err := p.Stat(); err != nil {
					continue
				}
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(pids)), "ns/proc")
	})
}

// BenchmarkStatParse is the parse alone, on one real stat line; procfs has
// no parser that takes bytes, so only picket's side is here.
func BenchmarkStatParse(b *testing.B) {
	line, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		b.Skip(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		var st procid.Stat
		if err := procid.ParseStat(line, &st); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkNetTable reads one /proc/net table: picket's in-place scan (the
// inode and state columns only) against procfs's NetTCP/NetUDP/NetUNIX,
// which parse every line into a struct. Both read the same live file, so
// the kernel's formatting cost is in both.
func BenchmarkNetTable(b *testing.B) {
	benchLoad(b)
	fs, err := procfs.NewFS("/proc")
	if err != nil {
		b.Fatal(err)
	}
	for _, tc := range []struct {
		file   string
		procfs func() (int, error)
	}{
		//lint:ignore SA1019 the benchmark measures procfs's text parser against picket's on purpose
		{"tcp", func() (int, error) { t, err := fs.NetTCP(); return len(t), err }},
		{"udp", func() (int, error) { t, err := fs.NetUDP(); return len(t), err }},
		{"unix", func() (int, error) { t, err := fs.NetUNIX(); return len(t.Rows), err }},
	} {
		var nt netTable
		for _, t := range netTables {
			if t.file == tc.file {
				nt = t
			}
		}
		var rows int
		b.Run(tc.file+"/picket", func(b *testing.B) {
			var r tableReader
			b.ReportAllocs()
			for b.Loop() {
				t := &nsTables{kinds: make(map[uint64]sockKind, 1024)}
				if err := r.readTable(filepath.Join("/proc/net", nt.file), nt, t); err != nil {
					b.Fatal(err)
				}
				rows = t.totals.Sum()
			}
			b.ReportMetric(float64(rows), "rows")
		})
		b.Run(tc.file+"/procfs", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if rows, err = tc.procfs(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(rows), "rows")
		})
	}
}

// benchRef is one socket fd found in /proc/PID/fd.
type benchRef struct {
	pid, fd int
	ino     uint64
}

// socketRefs lists every socket fd of the host's network namespace (as the
// fd walk finds them); it is the input of every attribution method.
func socketRefs(b *testing.B) []benchRef {
	b.Helper()
	hostNS, _ := os.Readlink("/proc/self/ns/net")
	var refs []benchRef
	for _, pid := range livePids(b) {
		base := "/proc/" + strconv.Itoa(pid)
		if ns, _ := os.Readlink(base + "/ns/net"); ns != hostNS {
			continue
		}
		ents, err := os.ReadDir(base + "/fd")
		if err != nil {
			continue
		}
		for _, e := range ents {
			l, err := os.Readlink(base + "/fd/" + e.Name())
			if err != nil || !strings.HasPrefix(l, "socket:[") {
				continue
			}
			ino, _ := strconv.ParseUint(strings.TrimSuffix(l[8:], "]"), 10, 64)
			fd, _ := strconv.Atoi(e.Name())
			refs = append(refs, benchRef{pid, fd, ino})
		}
	}
	return refs
}

// xattrKind is method (b) for one fd: getxattr on /proc/PID/fd/N (a path
// walk through /proc each time).
func xattrKind(path []byte, r benchRef, val []byte) ([]byte, sockKind) {
	path = append(path[:0], "/proc/"...)
	path = strconv.AppendInt(path, int64(r.pid), 10)
	path = append(path, "/fd/"...)
	path = strconv.AppendInt(path, int64(r.fd), 10)
	n, err := unix.Getxattr(string(path), "system.sockprotoname", val)
	if err != nil || n == 0 {
		return path, kindOther
	}
	return path, kindOfProto(strings.TrimRight(string(val[:n]), "\x00"))
}

// getxattrat is getxattrat(2) (Linux 6.13): the same xattr, relative to an
// open /proc/PID/fd directory, which the fd walk has open anyway.
func getxattrat(dirfd int, name string, attr *byte, val []byte) (int, error) {
	p, err := unix.BytePtrFromString(name)
	if err != nil {
		return 0, err
	}
	args := struct {
		value uint64
		size  uint32
		flags uint32
	}{uint64(uintptr(unsafe.Pointer(&val[0]))), uint32(len(val)), 0}
	n, _, errno := unix.Syscall6(unix.SYS_GETXATTRAT, uintptr(dirfd), uintptr(unsafe.Pointer(p)), 0,
		uintptr(unsafe.Pointer(attr)), uintptr(unsafe.Pointer(&args)), unsafe.Sizeof(args))
	if errno != 0 {
		return 0, errno
	}
	return int(n), nil
}

// BenchmarkAttribution compares the ways to learn each socket fd's type,
// given the (pid, fd, inode) list the fd walk produces anyway:
//
//	tables:   read every /proc/net table once as text, join on the inode
//	          (picket's way for other namespaces and fixture trees); sockets
//	          in no table fall back to the xattr
//	xattr:    getxattr(/proc/PID/fd/N, "system.sockprotoname") per socket
//	xattrat:  the same with getxattrat(fd-dir, "N") (Linux ≥ 6.13)
//	sockdiag: NETLINK_SOCK_DIAG dumps for tcp, tcp6, udp, udp6 and unix, the
//	          small tables as text (what picket does in its own namespace),
//	          joined on the inode; sockets in none fall back to the xattr
//	fdwalk:   for scale, the common part every method needs: getdents of
//	          each fd/ and a readlink per fd
//
// Every method must give the same counts; one op classifies every socket.
func BenchmarkAttribution(b *testing.B) {
	benchLoad(b)
	refs := socketRefs(b)
	if len(refs) == 0 {
		b.Skip("no socket fds readable")
	}
	count := func(kinds []sockKind) (c snapshotCounts) {
		for _, k := range kinds {
			c.add(k)
		}
		return c
	}
	path, val := make([]byte, 0, 64), make([]byte, 64)
	attr, _ := unix.BytePtrFromString("system.sockprotoname")

	tables := func(kinds []sockKind) {
		var r tableReader
		t, err := r.readNS("/proc/net")
		if err != nil {
			b.Fatal(err)
		}
		for i, ref := range refs {
			k := t.kind(ref.ino)
			if k == kindUnknown {
				path, k = xattrKind(path, ref, val)
			}
			kinds[i] = k
		}
	}
	xattr := func(kinds []sockKind) {
		for i, ref := range refs {
			path, kinds[i] = xattrKind(path, ref, val)
		}
	}
	xattrat := func(kinds []sockKind) {
		dfd, dpid := -1, -1
		for i, ref := range refs {
			if ref.pid != dpid {
				if dfd >= 0 {
					unix.Close(dfd)
				}
				dpid = ref.pid
				dfd, _ = unix.Open("/proc/"+strconv.Itoa(ref.pid)+"/fd", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
			}
			path = strconv.AppendInt(path[:0], int64(ref.fd), 10)
			n, err := getxattrat(dfd, string(path), attr, val)
			if err != nil || n == 0 {
				kinds[i] = kindOther
				continue
			}
			kinds[i] = kindOfProto(strings.TrimRight(string(val[:n]), "\x00"))
		}
		if dfd >= 0 {
			unix.Close(dfd)
		}
	}
	if d, err := openSockDiag(nil); err != nil {
		b.Skipf("sock_diag: %v", err)
	} else {
		d.close()
	}
	var dr tableReader
	sockdiag := func(kinds []sockKind) {
		t, err := dr.readNSDiag("/proc/net", true, len(refs))
		if err != nil {
			b.Fatal(err)
		}
		for i, ref := range refs {
			k := t.kind(ref.ino)
			if k == kindUnknown {
				path, k = xattrKind(path, ref, val)
			}
			kinds[i] = k
		}
	}

	methods := []struct {
		name string
		fn   func([]sockKind)
	}{{"tables", tables}, {"xattr", xattr}, {"xattrat", xattrat}, {"sockdiag", sockdiag}}
	var want snapshotCounts
	for i, m := range methods {
		kinds := make([]sockKind, len(refs))
		m.fn(kinds)
		got := count(kinds)
		if i == 0 {
			want = got
		} else if got != want {
			// A socket opened or closed by the rest of the system between
			// two methods moves a count by one or two; more is a bug.
			b.Logf("%s counts %+v, tables %+v", m.name, got, want)
		}
	}
	for _, m := range methods {
		b.Run(m.name, func(b *testing.B) {
			kinds := make([]sockKind, len(refs))
			b.ReportAllocs()
			for b.Loop() {
				m.fn(kinds)
			}
			b.ReportMetric(float64(len(refs)), "sockets")
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(refs)), "ns/socket")
		})
	}
	b.Run("fdwalk", func(b *testing.B) {
		c := liveCollector(b, Options{})
		w := newProcScanner(c).worker(0)
		procfd, err := unix.Open("/proc", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			b.Fatal(err)
		}
		defer unix.Close(procfd)
		pids := livePids(b)
		b.ReportAllocs()
		for b.Loop() {
			w.socks = w.socks[:0]
			for _, pid := range pids {
				w.path = append(strconv.AppendInt(w.path[:0], int64(pid), 10), "/fd\x00"...)
				w.readFDs(procfd, w.path)
			}
		}
		b.ReportMetric(float64(len(w.socks)), "sockets")
	})
}
