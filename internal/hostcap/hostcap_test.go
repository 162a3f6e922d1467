package hostcap

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/google/nftables"
)

// TestProbeLive probes this machine, whose kernel has every feature picket
// uses: each must be found, through the real syscalls.
func TestProbeLive(t *testing.T) {
	s := Probe(Options{})
	var b strings.Builder
	if err := s.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	t.Logf("\n%s", b.String())
	if !s.Live || s.Kernel == "" || s.Kernel == "unknown" {
		t.Errorf("live probe: kernel %q live %v", s.Kernel, s.Live)
	}
	for _, n := range []Name{Pidfd, Openat2, FDCount, SockDiagUnix, SockDiagInet, MemAvailable} {
		if f := s.Feature(n); !f.Found || !f.Probed {
			t.Errorf("%s not found on a %s kernel: %+v", n, s.Kernel, f)
		}
	}
	if f := s.Feature(BPFIter); f.Probed || f.Detail == "" {
		t.Errorf("bpf_iter is the BPF collector's to probe: %+v", f)
	}
	if got := len(s.Features()); got != len(Names()) {
		t.Errorf("%d features, want %d", got, len(Names()))
	}
	for _, n := range Names() {
		if Fallback(n) == "" || Uses(n) == "" {
			t.Errorf("%s: no text for the report", n)
		}
	}
	if os.Geteuid() == 0 && !s.HasCap(CapKill) {
		t.Errorf("root without CAP_KILL? caps %x", s.Caps)
	}
}

// TestNftablesProbeChangesNothing: the probe's batch is aborted, so the
// namespace it ran in has no table afterwards.
func TestNftablesProbeChangesNothing(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (creates a network namespace); CI runs as root")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs ip (iproute2)")
	}
	name := "pkt-hostcap-" + strconv.Itoa(os.Getpid())
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Skipf("ip netns add: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "del", name).Run() })
	path := "/run/netns/" + name
	f := probeNftables(path)
	if !f.Found {
		t.Fatalf("nftables not found in a fresh namespace as root: %+v", f)
	}
	ns, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	c, err := nftables.New(nftables.WithNetNSFd(int(ns.Fd())))
	if err != nil {
		t.Fatal(err)
	}
	tables, err := c.ListTables()
	if err != nil {
		t.Fatal(err)
	}
	for _, tb := range tables {
		t.Errorf("the probe left table %s behind", tb.Name)
	}
	if f := probeNftables("/nonexistent/netns"); f.Found || !strings.Contains(f.Detail, "network namespace") {
		t.Errorf("a namespace that does not exist: %+v", f)
	}
}

// TestProbeOldHostTree: a tree with an OpenVZ 2.6.32 container's files —
// no MemAvailable, no /proc/pressure, /proc/vz without /proc/bc, v1
// cgroups only — probes as such, and nothing that needs this kernel is
// claimed.
func TestProbeOldHostTree(t *testing.T) {
	root := t.TempDir()
	w := func(p, s string) {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	w("proc/sys/kernel/osrelease", "2.6.32-042stab145.3\n")
	w("proc/meminfo", "MemTotal:        1048576 kB\nMemFree:          412000 kB\nBuffers:               0 kB\nCached:           200000 kB\n")
	w("proc/vz/veinfo", "  101     0     43          10.0.0.5\n")
	w("proc/self/mountinfo", "20 1 0:18 / /proc rw,nosuid,nodev,noexec,relatime - proc proc rw\n"+
		"25 1 0:21 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer\n"+
		"26 1 0:22 / /sys/fs/cgroup/cpu\\040acct rw,relatime - cgroup cgroup rw,cpu,cpuacct\n")
	s := Probe(Options{Root: root})
	if s.Live || s.Kernel != "2.6.32-042stab145.3" {
		t.Errorf("kernel %q live %v", s.Kernel, s.Live)
	}
	if s.Container != "openvz" {
		t.Errorf("container %q (%s)", s.Container, s.ContainerEvidence)
	}
	for _, n := range []Name{MemAvailable, PSI, CgroupV2, BTF} {
		if f := s.Feature(n); f.Found || !f.Probed || f.Detail == "" {
			t.Errorf("%s: %+v", n, f)
		}
	}
	if !s.Has(CgroupV1) || s.Cgroups.Layout != "legacy" || !slices.Equal(s.Cgroups.V1, []string{"cpu", "cpuacct", "freezer"}) {
		t.Errorf("cgroups: %+v", s.Cgroups)
	}
	for _, n := range []Name{Pidfd, Openat2, FDCount, Nftables, Kmsg} {
		if f := s.Feature(n); f.Found || f.Probed {
			t.Errorf("%s was probed on a fixture tree: %+v", n, f)
		}
	}
	var b strings.Builder
	s.WriteText(&b)
	for _, want := range []string{"kernel 2.6.32-042stab145.3 (the tree", "in a openvz container", "mem_available        no     3.14    without: available memory is estimated"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, b.String())
		}
	}
}

// TestWithout: a test switches features and capabilities off on a copy;
// the probed Set is untouched.
func TestWithout(t *testing.T) {
	s := Probe(Options{})
	off := s.Without(Pidfd, Openat2).WithoutCaps(CapKill, CapNetAdmin)
	if off.Has(Pidfd) || off.Has(Openat2) || off.HasCap(CapKill) || off.HasCap(CapNetAdmin) {
		t.Error("Without did not switch off")
	}
	if !s.Has(Pidfd) || !s.Has(Openat2) {
		t.Error("Without changed the original")
	}
	if os.Geteuid() == 0 && !s.HasCap(CapKill) {
		t.Error("WithoutCaps changed the original")
	}
	notes := strings.Join(off.Notices(), "\n")
	for _, want := range []string{"no pidfd (switched off): kill re-reads", "no CAP_KILL: kill and freeze can signal only", "no CAP_NET_ADMIN: throttle is refused"} {
		if !strings.Contains(notes, want) {
			t.Errorf("notices lack %q:\n%s", want, notes)
		}
	}
	if !strings.Contains(off.Summary(), "without pidfd, openat2") {
		t.Errorf("summary: %s", off.Summary())
	}
	rec := s.With(Feature{Name: BPFIter, Found: true, Probed: true, Detail: "task_file iterator ran"})
	if !rec.Has(BPFIter) || s.Has(BPFIter) {
		t.Error("With")
	}
}

func TestReadCapEff(t *testing.T) {
	p := filepath.Join(t.TempDir(), "status")
	os.WriteFile(p, []byte("Name:\tpicket\nCapInh:\t0000000000000000\nCapPrm:\t000001ffffffffff\nCapEff:\t000001fffeffefdf\n"), 0o644)
	c, err := readCapEff(p)
	if err != nil {
		t.Fatal(err)
	}
	// 0x1fffeffefdf: bit 5 (CAP_KILL) and 12 (CAP_NET_ADMIN) and 24
	// (CAP_SYS_RESOURCE) clear.
	for cp, want := range map[Cap]bool{CapKill: false, CapNetAdmin: false, CapSysResource: false, CapSysPtrace: true, CapBPF: true, CapDacOverride: true} {
		if c.Has(cp) != want {
			t.Errorf("%s: %v, want %v", cp, c.Has(cp), want)
		}
	}
	os.WriteFile(p, []byte("CapEff:\tzz\n"), 0o644)
	if _, err := readCapEff(p); err == nil || !strings.Contains(err.Error(), "status:1: CapEff") {
		t.Errorf("malformed CapEff: %v", err)
	}
}
