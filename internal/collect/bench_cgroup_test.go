package collect

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/picket-guard/picket/internal/cgroup"
	"github.com/picket-guard/picket/internal/snapshot"
)

// Benchmarks of the cgroup side of a look: the tree (BenchmarkCgroups, on
// a generated tree of a Kubernetes node's size) and the walk's added read
// of /proc/PID/cgroup (BenchmarkProcCgroup, BenchmarkCollectLightCgroups).
// docs/cgroups.md has the numbers.

// v2Files are the interface files of a v2 cgroup with the pids, memory and
// cpu controllers, in the kernel's formats.
var v2Files = map[string]string{
	"cgroup.procs": "", "cgroup.events": "populated 1\nfrozen 0\n", "cgroup.freeze": "0\n", "cgroup.type": "domain\n",
	"pids.current": "12\n", "pids.max": "512\n", "pids.peak": "40\n", "pids.events": "max 0\n",
	"memory.current": "104857600\n", "memory.max": "max\n", "memory.high": "max\n", "memory.peak": "209715200\n",
	"memory.events": "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\noom_group_kill 0\n",
	"memory.stat": "anon 52428800\nfile 52428800\nkernel 8912896\nkernel_stack 1146880\npagetables 2613248\nsec_pagetables 0\n" +
		"percpu 0\nsock 0\nvmalloc 0\nshmem 0\nzswap 0\nzswapped 0\nfile_mapped 1048576\nfile_dirty 0\nfile_writeback 0\n" +
		"swapcached 0\nanon_thp 0\nfile_thp 0\nshmem_thp 0\ninactive_anon 13107200\nactive_anon 39321600\n" +
		"inactive_file 26214400\nactive_file 26214400\nunevictable 0\nslab_reclaimable 4194304\nslab_unreclaimable 2097152\n" +
		"slab 6291456\nworkingset_refault_anon 0\nworkingset_refault_file 1024\nworkingset_activate_anon 0\n" +
		"workingset_activate_file 12\nworkingset_restore_anon 0\nworkingset_restore_file 0\nworkingset_nodereclaim 0\n" +
		"pgscan 20417\npgsteal 18011\npgscan_kswapd 0\npgscan_direct 20417\npgscan_khugepaged 0\npgsteal_kswapd 0\n" +
		"pgsteal_direct 18011\npgsteal_khugepaged 0\npgfault 4184871\npgmajfault 2041\npgrefill 0\npgactivate 1120\n",
	"memory.swap.current": "0\n", "memory.swap.max": "max\n",
	"cpu.max":         "max 100000\n",
	"cpu.stat":        "usage_usec 81733919\nuser_usec 60032510\nsystem_usec 21701409\nnr_periods 0\nnr_throttled 0\nthrottled_usec 0\nnr_bursts 0\nburst_usec 0\n",
	"memory.pressure": "some avg10=0.00 avg60=0.00 avg300=0.00 total=4102311\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=3102311\n",
	"cpu.pressure":    "some avg10=0.00 avg60=0.00 avg300=0.00 total=1102311\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n",
	"io.pressure":     "some avg10=0.00 avg60=0.00 avg300=0.00 total=802311\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=502311\n",
}

// cgroupTree writes a unified host with n cgroups laid out as a kubelet
// does: kubepods.slice, three QoS slices, pods of four containers each.
func cgroupTree(b *testing.B, n int) string {
	b.Helper()
	root := b.TempDir()
	write := func(rel string) {
		d := filepath.Join(root, "sys/fs/cgroup", rel)
		if err := os.MkdirAll(d, 0o755); err != nil {
			b.Fatal(err)
		}
		for name, text := range v2Files {
			if err := os.WriteFile(filepath.Join(d, name), []byte(text), 0o644); err != nil {
				b.Fatal(err)
			}
		}
	}
	os.MkdirAll(filepath.Join(root, "proc/self"), 0o755)
	os.WriteFile(filepath.Join(root, "proc/self/mountinfo"),
		[]byte("26 24 0:24 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 rw,nsdelegate\n"), 0o644)
	os.MkdirAll(filepath.Join(root, "sys/fs/cgroup"), 0o755)
	os.WriteFile(filepath.Join(root, "sys/fs/cgroup/cgroup.controllers"), []byte("cpu io memory pids\n"), 0o644)
	made := 1
	write("kubepods.slice")
	for pod := 0; made < n; pod++ {
		qos := []string{"burstable", "besteffort", "guaranteed"}[pod%3]
		slice := "kubepods.slice/kubepods-" + qos + ".slice"
		if pod < 3 {
			write(slice)
			made++
		}
		podDir := fmt.Sprintf("%s/kubepods-%s-pod%08d_0000_0000_0000_000000000000.slice", slice, qos, pod)
		write(podDir)
		made++
		for c := 0; c < 4 && made < n; c++ {
			write(fmt.Sprintf("%s/cri-containerd-%064d.scope", podDir, pod*4+c))
			made++
		}
	}
	return root
}

// BenchmarkCgroups is the cgroup source on a tree of 5,000 cgroups with
// every v2 file (pids, memory, cpu, pressure): ns/cgroup is what a look
// pays per cgroup. Every cgroup of the tree has a pids.max, so the light
// look (which re-reads the limited ones) reads them all: its worst case. The files are on the test's temporary directory, not
// cgroupfs, so it measures picket's side (a syscall and a parse per file);
// BenchmarkCgroupsLive reads this host's real hierarchies.
func BenchmarkCgroups(b *testing.B) {
	const n = 5000
	root := cgroupTree(b, n)
	c, err := New(Options{Root: root})
	if err != nil {
		b.Fatal(err)
	}
	benchCgroupSource(b, c, n)
}

// BenchmarkCgroupsLive is the cgroup source on this host's hierarchies
// (cgroupfs: the kernel formats each file as it is read).
func BenchmarkCgroupsLive(b *testing.B) {
	benchCgroupSource(b, liveCollector(b, Options{}), 0)
}

func benchCgroupSource(b *testing.B, c *Collector, want int) {
	for _, depth := range []Depth{Full, Light} {
		name := map[Depth]string{Full: "full", Light: "light"}[depth]
		b.Run(name, func(b *testing.B) {
			var s *snapshot.Snapshot
			b.ReportAllocs()
			for b.Loop() {
				s = &snapshot.Snapshot{}
				if err := (cgroupSource{}).updateDepth(context.Background(), c, s, depth); err != nil {
					b.Fatal(err)
				}
			}
			if len(s.Cgroups) < want {
				b.Fatalf("read %d cgroups, want %d", len(s.Cgroups), want)
			}
			walks := 0
			for _, cg := range s.Cgroups {
				walks += len(cg.Hierarchies)
			}
			if len(s.Cgroups) > 0 {
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(s.Cgroups)), "ns/cgroup")
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*walks), "ns/dir")
			}
			b.ReportMetric(float64(len(s.Cgroups)), "cgroups")
		})
	}
}

// BenchmarkProcCgroup is the walk's added read per process, beside the
// read of stat every process costs anyway: ns/proc of each.
func BenchmarkProcCgroup(b *testing.B) {
	pids := livePids(b)
	fd, err := unix.Open("/proc", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		b.Fatal(err)
	}
	defer unix.Close(fd)
	buf := make([]byte, 16<<10)
	for _, file := range []string{"stat", "cgroup"} {
		b.Run(file, func(b *testing.B) {
			path := make([]byte, 0, 64)
			var sink int
			b.ReportAllocs()
			for b.Loop() {
				for _, pid := range pids {
					path = append(append(strconv.AppendInt(path[:0], int64(pid), 10), '/'), file...)
					path = append(path, 0)
					n, err := readAt(fd, path, buf)
					if err != nil {
						continue
					}
					if file == "cgroup" {
						var p cgroup.Pick
						cgroup.EachLine(buf[:n], p.Line)
						sink += len(p.Primary())
					}
				}
			}
			_ = sink
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(pids)), "ns/proc")
		})
	}
}

// BenchmarkCollectLightCgroups is a light look with and without the
// cgroups (the tree and each process's /proc/PID/cgroup).
func BenchmarkCollectLightCgroups(b *testing.B) {
	for _, with := range []bool{false, true} {
		name := "without"
		if with {
			name = "with"
		}
		b.Run(name, func(b *testing.B) {
			c := liveCollector(b, Options{})
			if !with {
				var srcs []source
				for _, s := range c.sources {
					if _, ok := s.(cgroupSource); !ok {
						srcs = append(srcs, s)
					}
				}
				c.sources = srcs
			}
			s, _ := c.Collect(context.Background(), Light)
			b.ReportAllocs()
			for b.Loop() {
				s, _ = c.Collect(context.Background(), Light)
			}
			b.ReportMetric(float64(s.Processes.Total), "procs")
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*s.Processes.Total), "ns/proc")
		})
	}
}
