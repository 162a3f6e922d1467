// Package collect reads the host's processes, sockets and kernel limits into
// a snapshot.Snapshot. Every reader takes a root directory so that tests and
// `--root DIR` point it at a fixture tree (as prometheus/procfs does); with a
// root other than "/", nothing of the live system is touched.
package collect

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/prometheus/procfs"

	"github.com/picket-guard/picket/internal/cgroup"
	"github.com/picket-guard/picket/internal/hostcap"
	"github.com/picket-guard/picket/internal/procid"
	"github.com/picket-guard/picket/internal/snapshot"
)

// ErrNoData is returned by a source whose files do not exist on this host
// (no PSI, no beancounters, no conntrack): its part of the snapshot stays
// empty and no error is reported, as node_exporter's collectors do.
var ErrNoData = errors.New("collect: no data")

// Options configure a Collector.
type Options struct {
	// Root is the directory read as "/" (default "/"). ROOT/proc, ROOT/sys
	// and ROOT/etc/passwd are read.
	Root string
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// LimitsFDFloor: /proc/PID/limits is read for every process holding at
	// least this many fds (default 64)...
	LimitsFDFloor int
	// ...and for the LimitsTop processes with the most fds (default 32).
	LimitsTop int
	// NprocUsers is how many of the heaviest users get their RLIMIT_NPROC
	// read (default 16).
	NprocUsers int
	// MaxCgroups bounds the cgroups one look reads (default 10,000),
	// breadth first: the rest are counted in CgroupLayout.Skipped.
	MaxCgroups int
	// KernelLog, when set, gives the kernel log's summary (picket run
	// follows /dev/kmsg); when nil, each collection reads the buffer once.
	KernelLog KernelLog
	// Host is the feature probe (nil: New asks the kernel what it needs):
	// light looks count fds with one stat only where it found the kernel
	// counting them, and the BPF iterator is not tried where it found no
	// BTF or no privilege to load it.
	Host *hostcap.Set
	// ProcOnly attributes sockets by the /proc walk even where the BPF
	// iterator could (the reference it is tested against).
	ProcOnly bool
	// ProcOnlyProcesses reads each process's stat, status and cgroup from
	// /proc even where the BPF task iterator could (the reference it is
	// tested against); sockets may still come from a BPF socket pass.
	ProcOnlyProcesses bool
	// BPFNoWalk attributes sockets with the task_file iterator even where
	// the fd walk loads (tests compare the two).
	BPFNoWalk bool
	// bpfListAll makes the fd walk list the sockets it would count
	// (bpfSockets.pass): tests compare them with the /proc walk's, inode
	// by inode.
	bpfListAll bool
	// BPFMinFiles, when set, leaves the iterator unloaded while the host
	// has fewer open files than this (/proc/sys/fs/file-nr): loading it
	// costs about as much as walking 10,000 fds (relocating it against
	// the kernel's BTF), which a one-shot command pays on every run and
	// picket run once. OneShotMinFiles is what the one-shot commands use.
	// Where BPFPinDir holds this build's pinned iterators, opening them
	// costs next to nothing and BPFMinFiles does not apply.
	BPFMinFiles int
	// BPFPinDir is a directory on a BPF filesystem where the iterators
	// are pinned once loaded and opened from by later looks and processes
	// (sockiter.Options.PinDir; "" for none). The commands use
	// sockiter.DefaultPins() for the live host.
	BPFPinDir string
	// NameService names the uids /etc/passwd does not list (NIS, LDAP,
	// sssd), off the look, through getent: nil means a resolver of its own
	// for the live root where getent is installed, none for a fixture
	// tree (whose users are not the host's). NoNameService turns it off.
	NameService   *procid.Resolver
	NoNameService bool
}

// source is one part of the snapshot read from its own files. Each lives in
// a file of its own; update fills its part of snap or returns ErrNoData.
type source interface {
	name() snapshot.Source
	update(ctx context.Context, c *Collector, snap *snapshot.Snapshot) error
}

// depthSource is a source whose full read costs more than a light look
// should pay (the cgroup tree: thousands of files on a Kubernetes node):
// Collect calls updateDepth instead of update.
type depthSource interface {
	source
	updateDepth(ctx context.Context, c *Collector, snap *snapshot.Snapshot, depth Depth) error
}

// Collector takes snapshots. It keeps buffers and the user table between
// collections, so reuse one; it is not safe for concurrent use.
type Collector struct {
	opts    Options
	root    string
	proc    string // ROOT/proc
	fs      procfs.FS
	live    bool // root is "/": the kernel's own /proc, with its ownership and xattrs
	ids     procid.FS
	users   *procid.Users
	scanner *procScanner
	sources []source
	// cgroupsMounted is set by the cgroup source when the root has cgroup
	// hierarchies: the process walk then reads /proc/PID/cgroup too.
	cgroupsMounted bool
	cgfs           *cgroup.FS // the hierarchies the cgroup source found
	// cgWatch is, by hierarchy, the cgroups the last full look found with
	// a limit or frozen: what a light look re-reads.
	cgWatch map[string][]string
	fdCount bool // stat of /proc/PID/fd gives the fd count (Linux 6.2)
}

// New returns a Collector reading opts.Root.
func New(opts Options) (*Collector, error) {
	if opts.Root == "" {
		opts.Root = "/"
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.LimitsFDFloor == 0 {
		opts.LimitsFDFloor = 64
	}
	if opts.LimitsTop == 0 {
		opts.LimitsTop = 32
	}
	if opts.NprocUsers == 0 {
		opts.NprocUsers = 16
	}
	if opts.MaxCgroups == 0 {
		opts.MaxCgroups = 10000
	}
	root, err := filepath.Abs(opts.Root)
	if err != nil {
		return nil, fmt.Errorf("root %q: %w", opts.Root, err)
	}
	proc := filepath.Join(root, "proc")
	if fi, err := os.Stat(proc); err != nil || !fi.IsDir() {
		return nil, fmt.Errorf("root %q has no proc directory: %s is not readable", opts.Root, proc)
	}
	fs, err := procfs.NewFS(proc)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", proc, err)
	}
	ids, err := procid.NewFS(root)
	if err != nil {
		return nil, err
	}
	c := &Collector{
		opts:  opts,
		root:  root,
		proc:  proc,
		fs:    fs,
		live:  root == "/",
		ids:   ids,
		users: procid.NewUsers(root),
	}
	if c.live && !opts.NoNameService {
		nss := opts.NameService
		if nss == nil {
			nss = procid.HostResolver(root)
		}
		c.users.Resolve(nss)
	}
	if opts.Host != nil {
		c.fdCount = opts.Host.Has(hostcap.FDCount)
	} else if c.live {
		c.fdCount = hostcap.ProbeFDCount().Found
	}
	c.scanner = newProcScanner(c)
	c.sources = []source{
		sockstatSource{},
		sysctlSource{},
		conntrackSource{},
		meminfoSource{},
		vmstatSource{},
		psiSource{},
		beancounterSource{},
		cgroupSource{},
		netstatSource{},
		conntrackStatSource{},
		kernelLogSource{},
	}
	return c, nil
}

// OneShotMinFiles is the BPFMinFiles of a command that takes one or two
// looks and exits (picket snapshot, doctor, check): below it, the /proc
// walk's readlinks, spread over the CPUs, cost less than loading the
// iterator (docs/benchmarks.md).
const OneShotMinFiles = 20000

// Depth is how much of the host one collection reads.
type Depth int

const (
	// Full reads everything: processes and their fds, every socket table
	// and every kernel counter. `picket snapshot` and doctor take full
	// looks.
	Full Depth = iota
	// Light is a full look without what costs most: no fd walk, no socket
	// tables. Processes, groups, users and every kernel counter are there
	// (fd counts from one stat per process on Linux ≥ 6.2, from listing
	// each fd/ before); Sockets is
	// empty and Snapshot.Light says so. The daemon takes one when the rules
	// due need nothing of sockets (a fork-storm guard every second). On a
	// fixture tree a light look is a full one.
	Light
)

// Collect takes one snapshot, as deep as depth says. A missing file leaves
// its part empty; a process that exits mid-scan is skipped; a malformed file
// is reported in the returned error (and in snap.Errors) without spoiling
// the rest, so the snapshot is returned even when err is not nil.
func (c *Collector) Collect(ctx context.Context, depth Depth) (*snapshot.Snapshot, error) {
	start := c.opts.Now()
	snap := &snapshot.Snapshot{
		Time:         start.UTC().Truncate(time.Millisecond),
		Host:         c.Hostname(),
		Beancounters: []snapshot.Beancounter{},
		Cgroups:      []snapshot.Cgroup{},
	}
	if !c.live {
		snap.Root = c.opts.Root
	}
	snap.Kernel.PageSize = os.Getpagesize()

	var errs []error
	fail := func(src snapshot.Source, err error) {
		errs = append(errs, fmt.Errorf("%s: %w", src, err))
		snap.AddError(src, err)
	}
	light := depth == Light && c.live
	// A full look of the live host with the BPF iterators reads the kernel
	// log while everything else is read: of what is left once the
	// iterators replace the fd walk, the read of /dev/kmsg is a tenth, and
	// waits on nothing the other sources read. The /proc walk keeps every
	// CPU busy already, so there it is read in turn.
	useBPF := !light && c.live && c.scanner.bpf.ready(c)
	var klog *kernelLogRead
	if useBPF {
		klog = startKernelLog(ctx, c)
		defer klog.wait()
	}
	for _, s := range c.sources {
		if err := ctx.Err(); err != nil {
			return snap, err
		}
		if klog != nil {
			if _, ok := s.(kernelLogSource); ok {
				continue
			}
		}
		var err error
		if ds, ok := s.(depthSource); ok && light {
			err = ds.updateDepth(ctx, c, snap, Light)
		} else {
			err = s.update(ctx, c, snap)
		}
		if err != nil && !errors.Is(err, ErrNoData) {
			fail(s.name(), err)
		}
	}
	// The process scan goes last among the cheap sources and right before the
	// socket tables: a socket held at fd-scan time is then still in the
	// tables when they are read.
	err := c.scanner.scan(ctx, snap, light, useBPF)
	if klog != nil {
		// In the errors, the kernel log keeps its place: the last source.
		if kerr := klog.wait(); kerr != nil && !errors.Is(kerr, ErrNoData) {
			fail(snapshot.SourceKernelLog, kerr)
		}
		snap.KernelLog = klog.snap.KernelLog
	}
	if err != nil {
		if ctx.Err() != nil {
			return snap, ctx.Err()
		}
		fail(snapshot.SourceProcesses, err)
	}
	sortSnapshot(snap)
	snap.DurationSeconds = c.opts.Now().Sub(start).Seconds()
	return snap, errors.Join(errs...)
}

// Hostname is the UTS name the root's kernel reports (what os.Hostname
// reads on Linux), so a fixture tree carries its own host name.
func (c *Collector) Hostname() string {
	b, err := os.ReadFile(filepath.Join(c.proc, "sys", "kernel", "hostname"))
	if err != nil {
		if c.live {
			if h, err := os.Hostname(); err == nil {
				return h
			}
		}
		return "unknown"
	}
	return strings.TrimSpace(string(b))
}

// sortSnapshot orders groups, users and holders heaviest first with stable
// ties, so output is deterministic for golden tests.
func sortSnapshot(s *snapshot.Snapshot) {
	g := s.Processes.Groups
	sort.Slice(g, func(i, j int) bool {
		if g[i].Count != g[j].Count {
			return g[i].Count > g[j].Count
		}
		if g[i].User != g[j].User {
			return g[i].User < g[j].User
		}
		return g[i].Comm < g[j].Comm
	})
	u := s.Processes.Users
	sort.Slice(u, func(i, j int) bool {
		if u[i].Threads != u[j].Threads {
			return u[i].Threads > u[j].Threads
		}
		return u[i].User < u[j].User
	})
	h := s.Sockets.Processes
	sort.Slice(h, func(i, j int) bool {
		if h[i].Total != h[j].Total {
			return h[i].Total > h[j].Total
		}
		return h[i].PID < h[j].PID
	})
	l := s.Processes.List
	sort.Slice(l, func(i, j int) bool { return l[i].PID < l[j].PID })
}
