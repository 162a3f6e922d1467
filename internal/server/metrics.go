package server

import (
	"cmp"
	"fmt"
	"maps"
	"net/http"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/picket-guard/picket/internal/alarm"
	"github.com/picket-guard/picket/internal/doctor"
	"github.com/picket-guard/picket/internal/snapshot"
)

// Cardinality. Label values that come from processes (user, comm, pid) would
// let whoever runs processes mint series without end, so only these get a
// series per scrape:
//
//   - process groups (user × comm): the TopGroups heaviest by process count,
//     plus every group with at least GroupMinProcesses processes (so a storm
//     shows even on a host with many busy groups), at most maxGroupSeries;
//
//   - users: the TopGroups heaviest by thread count (RLIMIT_NPROC counts
//     threads);
//
//   - socket holders: the TopHolders heaviest by socket count, one series per
//     socket type they hold (types they hold none of are left out).
//
//   - cgroups: every cgroup with a limit (pids.max, memory.max or
//     memory.high set), plus the TopGroups heaviest of the others by tasks
//     and by memory, at most maxCgroupSeries; labelled by path and unit.
//     Paths are named by whoever makes the cgroup, so the bound holds
//     whatever they make.
//
// Host-wide totals (picket_processes, picket_sockets) still count everyone.
const (
	maxGroupSeries  = 500
	maxCgroupSeries = 300
)

// metricsHandler is /metrics: picket's collector, which reads the Source at
// scrape time, and the Go runtime's and process's own collectors, in a
// registry of its own (no global state: two servers in one test binary do
// not collide).
//
// Two registries: the whole set for a scrape authorize lets through, and
// one without the per-process series (socket holders' sockets and
// descriptors, their forecasts) for anyone else; see access.go.
func (s *Server) metricsHandler() (http.Handler, error) {
	public, err := s.metricsRegistry(false)
	if err != nil {
		return nil, err
	}
	full, err := s.metricsRegistry(true)
	if err != nil {
		return nil, err
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		h := public
		if r.Header.Get("Authorization") != "" && s.token != nil {
			// A scraper that sends a token wants to know it is wrong.
			if d := s.checkBearer(r); d != nil {
				d.write(w)
				return
			}
			h = full
		} else if s.authorize(r) == nil {
			h = full
		}
		h.ServeHTTP(w, r)
	}), nil
}

func (s *Server) metricsRegistry(private bool) (http.Handler, error) {
	reg := prometheus.NewRegistry()
	c := newCollector(s.opts)
	c.private = private
	for _, c := range []prometheus.Collector{
		c,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("metrics: %w", err)
		}
	}
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog:            promLogger{s},
		ErrorHandling:       promhttp.ContinueOnError,
		MaxRequestsInFlight: 4,
		Timeout:             10 * time.Second,
	}), nil
}

type promLogger struct{ s *Server }

func (l promLogger) Println(v ...any) { l.s.log.Error("metrics", "err", fmt.Sprint(v...)) }

// vmstatCounters are the /proc/vmstat counters collect keeps (its
// vmstatKeys); each becomes picket_vmstat_NAME_total. Others are ignored.
var vmstatCounters = []string{"pswpin", "pswpout", "pgmajfault", "oom_kill", "pgscan_direct", "pgsteal_direct", "allocstall_normal"}

type collector struct {
	src                         Source
	topGroups, groupMin, topHol int
	version                     string
	// private adds the per-process series: socket holders and their
	// forecasts.
	private bool

	all []*prometheus.Desc

	processes, threads, fdUnreadable         *prometheus.Desc
	groupProcs, groupThreads, groupRSS       *prometheus.Desc
	userProcs, userThreads, userNproc        *prometheus.Desc
	sockets, tcpStates, netns                *prometheus.Desc
	holderSockets, holderFDs, holderMaxFDs   *prometheus.Desc
	sockUsed, tcpInuse, tcpOrphans, tcpTW    *prometheus.Desc
	tcpAlloc, tcpMemUsed, udpInuse, udpMem   *prometheus.Desc
	udpliteInuse, rawInuse, fragInuse, fragB *prometheus.Desc
	s6TCP, s6UDP, s6UDPLite, s6Raw, s6Frag   *prometheus.Desc
	tcpMem, tcpMaxOrphans, pageSize          *prometheus.Desc
	fileAlloc, fileUnused, fileMax, nrOpen   *prometheus.Desc
	pidMax, threadsMax, ctEntries, ctLimit   *prometheus.Desc
	memTotal, memFree, memAvail, memBuffers  *prometheus.Desc
	memCached, memCommitted, memCommitLimit  *prometheus.Desc
	swapTotal, swapFree                      *prometheus.Desc
	vmstat                                   map[string]*prometheus.Desc
	psiSome, psiFull, psiSomeSec, psiFullSec *prometheus.Desc
	bcHeld, bcMaxHeld, bcBarrier, bcLimit    *prometheus.Desc
	bcFailcnt                                *prometheus.Desc
	cgPids, cgPidsMax, cgForks, cgMem        *prometheus.Desc
	cgMemMax, cgMemHigh, cgOOM, cgMemAtMax   *prometheus.Desc
	cgProcs, cgFailcnt, cgFrozen             *prometheus.Desc
	kernelMessages, kernelRecords, kernelOK  *prometheus.Desc
	netstat, ctStat                          *prometheus.Desc
	findingSeverity, doctorStatus, alarms    *prometheus.Desc
	collDuration, lastCollection, collErrors *prometheus.Desc
	configOK, buildInfo                      *prometheus.Desc
	feature, capability, refused             *prometheus.Desc
	spoolBatches, spoolBytes, spoolDropped   *prometheus.Desc
	rateLimited                              *prometheus.Desc
	exhaustion                               *prometheus.Desc
}

func newCollector(o Options) *collector {
	c := &collector{src: o.Source, topGroups: o.TopGroups, groupMin: o.GroupMinProcesses, topHol: o.TopHolders, version: o.Version}
	d := func(name, help string, labels ...string) *prometheus.Desc {
		desc := prometheus.NewDesc("picket_"+name, help, labels, nil)
		c.all = append(c.all, desc)
		return desc
	}
	user, comm := "user", "comm"

	c.processes = d("processes", "Processes (thread groups) on the host.")
	c.threads = d("threads", "Threads on the host.")
	c.fdUnreadable = d("fd_unreadable_processes", "Processes whose /proc/PID/fd picket could not read; their sockets are not attributed.")
	c.groupProcs = d("process_group_processes", "Processes per user and command, for the heaviest groups only (see picket's docs for the bound).", user, comm)
	c.groupThreads = d("process_group_threads", "Threads per user and command, for the same groups as picket_process_group_processes.", user, comm)
	c.groupRSS = d("process_group_resident_memory_bytes", "Resident memory per user and command, for the same groups as picket_process_group_processes.", user, comm)
	c.userProcs = d("user_processes", "Processes per user, for the heaviest users by threads.", user)
	c.userThreads = d("user_threads", "Threads per user (what RLIMIT_NPROC counts), for the heaviest users.", user)
	c.userNproc = d("user_nproc_limit", "Soft RLIMIT_NPROC of one of the user's processes; absent when unlimited or not read.", user)

	c.sockets = d("sockets", "Sockets in the kernel's tables by type, over every network namespace seen.", "type")
	c.tcpStates = d("tcp_sockets", "TCP sockets by state.", "state")
	c.netns = d("network_namespaces", "Network namespaces whose socket tables were counted.")
	c.holderSockets = d("socket_holder_sockets", "Sockets held by a process, by type, for the heaviest holders only.", "pid", comm, user, "type")
	c.holderFDs = d("socket_holder_open_fds", "Open file descriptors of a heavy socket holder.", "pid", comm, user)
	c.holderMaxFDs = d("socket_holder_max_fds", "Soft RLIMIT_NOFILE of a heavy socket holder; absent when not read.", "pid", comm, user)

	c.sockUsed = d("sockstat_sockets_used", "Sockets in use, all families (/proc/net/sockstat \"sockets: used\").")
	c.tcpInuse = d("sockstat_tcp_inuse", "IPv4 TCP sockets in use (sockstat TCP inuse).")
	c.tcpOrphans = d("sockstat_tcp_orphans", "TCP sockets no process holds any more (sockstat TCP orphan); compare with picket_tcp_max_orphans.")
	c.tcpTW = d("sockstat_tcp_tw", "TCP sockets in TIME_WAIT (sockstat TCP tw).")
	c.tcpAlloc = d("sockstat_tcp_alloc", "TCP sockets allocated (sockstat TCP alloc).")
	c.tcpMemUsed = d("sockstat_tcp_mem_pages", "Pages of memory TCP uses (sockstat TCP mem); compare with picket_tcp_mem_pages.")
	c.udpInuse = d("sockstat_udp_inuse", "IPv4 UDP sockets in use (sockstat UDP inuse).")
	c.udpMem = d("sockstat_udp_mem_pages", "Pages of memory UDP uses (sockstat UDP mem).")
	c.udpliteInuse = d("sockstat_udplite_inuse", "UDP-Lite sockets in use.")
	c.rawInuse = d("sockstat_raw_inuse", "IPv4 raw sockets in use.")
	c.fragInuse = d("sockstat_frag_inuse", "IPv4 fragment queues in use.")
	c.fragB = d("sockstat_frag_memory_bytes", "Memory held by IPv4 fragment queues.")
	c.s6TCP = d("sockstat6_tcp_inuse", "IPv6 TCP sockets in use (/proc/net/sockstat6).")
	c.s6UDP = d("sockstat6_udp_inuse", "IPv6 UDP sockets in use.")
	c.s6UDPLite = d("sockstat6_udplite_inuse", "IPv6 UDP-Lite sockets in use.")
	c.s6Raw = d("sockstat6_raw_inuse", "IPv6 raw sockets in use.")
	c.s6Frag = d("sockstat6_frag_inuse", "IPv6 fragment queues in use.")

	c.tcpMem = d("tcp_mem_pages", "net.ipv4.tcp_mem thresholds in pages: low, pressure, high.", "level")
	c.tcpMaxOrphans = d("tcp_max_orphans", "net.ipv4.tcp_max_orphans.")
	c.pageSize = d("page_size_bytes", "The kernel's page size, to turn the _pages metrics into bytes.")
	c.fileAlloc = d("filefd_allocated", "File handles allocated (/proc/sys/fs/file-nr, first field).")
	c.fileUnused = d("filefd_unused", "File handles allocated but unused (file-nr, second field).")
	c.fileMax = d("filefd_maximum", "fs.file-max.")
	c.nrOpen = d("nr_open", "fs.nr_open: the ceiling of any process's RLIMIT_NOFILE.")
	c.pidMax = d("pid_max", "kernel.pid_max.")
	c.threadsMax = d("threads_max", "kernel.threads-max.")
	c.ctEntries = d("nf_conntrack_entries", "Netfilter connection tracking entries; absent without nf_conntrack.")
	c.ctLimit = d("nf_conntrack_entries_limit", "net.netfilter.nf_conntrack_max.")

	c.memTotal = d("memory_total_bytes", "MemTotal from /proc/meminfo.")
	c.memFree = d("memory_free_bytes", "MemFree from /proc/meminfo.")
	c.memAvail = d("memory_available_bytes", "MemAvailable from /proc/meminfo.")
	c.memBuffers = d("memory_buffers_bytes", "Buffers from /proc/meminfo.")
	c.memCached = d("memory_cached_bytes", "Cached from /proc/meminfo.")
	c.memCommitted = d("memory_committed_as_bytes", "Committed_AS from /proc/meminfo.")
	c.memCommitLimit = d("memory_commit_limit_bytes", "CommitLimit from /proc/meminfo.")
	c.swapTotal = d("swap_total_bytes", "SwapTotal from /proc/meminfo.")
	c.swapFree = d("swap_free_bytes", "SwapFree from /proc/meminfo.")
	c.vmstat = map[string]*prometheus.Desc{}
	for _, k := range vmstatCounters {
		c.vmstat[k] = d("vmstat_"+k+"_total", "/proc/vmstat "+k+", since boot.")
	}
	c.psiSome = d("psi_some_ratio", "Share of time some task stalled on the resource, averaged over the window (/proc/pressure).", "resource", "window")
	c.psiFull = d("psi_full_ratio", "Share of time all non-idle tasks stalled on the resource, averaged over the window.", "resource", "window")
	c.psiSomeSec = d("psi_some_seconds_total", "Time some task stalled on the resource, since boot.", "resource")
	c.psiFullSec = d("psi_full_seconds_total", "Time all non-idle tasks stalled on the resource, since boot.", "resource")

	bc := []string{"uid", "resource"}
	c.bcHeld = d("beancounter_held", "OpenVZ beancounter held value (units depend on the resource).", bc...)
	c.bcMaxHeld = d("beancounter_maxheld", "OpenVZ beancounter highest held value.", bc...)
	c.bcBarrier = d("beancounter_barrier", "OpenVZ beancounter barrier.", bc...)
	c.bcLimit = d("beancounter_limit", "OpenVZ beancounter limit.", bc...)
	c.bcFailcnt = d("beancounter_failcnt_total", "OpenVZ beancounter failcnt: allocations refused at the barrier or limit.", bc...)

	cg := []string{"path", "unit"}
	c.cgProcs = d("cgroup_processes", "Processes in the cgroup and below it, for cgroups with a limit and the heaviest others.", cg...)
	c.cgPids = d("cgroup_tasks", "pids.current: tasks in the cgroup and below it.", cg...)
	c.cgPidsMax = d("cgroup_tasks_max", "pids.max (systemd's TasksMax=); absent when unlimited.", cg...)
	c.cgForks = d("cgroup_forks_refused_total", "pids.events max: forks refused at pids.max.", cg...)
	c.cgMem = d("cgroup_memory_bytes", "memory.current (v1: memory.usage_in_bytes).", cg...)
	c.cgMemMax = d("cgroup_memory_max_bytes", "memory.max (MemoryMax=; v1 memory.limit_in_bytes); absent when unlimited.", cg...)
	c.cgMemHigh = d("cgroup_memory_high_bytes", "memory.high (MemoryHigh=); absent when unlimited.", cg...)
	c.cgOOM = d("cgroup_oom_kills_total", "Processes the OOM killer killed in the cgroup (memory.events oom_kill; v1 memory.oom_control).", cg...)
	c.cgMemAtMax = d("cgroup_memory_max_events_total", "memory.events max: times the cgroup was at memory.max and reclaimed.", cg...)
	c.cgFailcnt = d("cgroup_memory_failcnt_total", "v1 memory.failcnt: charges that hit the limit.", cg...)
	c.cgFrozen = d("cgroup_frozen", "1 when the cgroup is frozen (cgroup.events frozen, v1 freezer.state FROZEN).", cg...)

	c.kernelMessages = d("kernel_messages_total", "Messages of the kernel's log (/dev/kmsg) picket knows, by kind, since boot as far as the kernel's buffer held them.", "kind")
	c.kernelRecords = d("kernel_log_records_total", "Records of the kernel's log by class: kernel (the kernel's own), user (written from userspace, never counted as the kernel's), unknown (kernel records no kind matches), lost (overwritten before picket read them), malformed, too_long.", "class")
	c.kernelOK = d("kernel_log_readable", "1 when picket reads the kernel's log, 0 when it cannot (not root, no CAP_SYSLOG).")
	c.netstat = d("netstat_tcpext_total", "TcpExt counters of /proc/net/netstat behind the kernel's messages, since boot, by the kernel's name.", "counter")
	c.ctStat = d("nf_conntrack_stat_total", "Netfilter conntrack statistics of /proc/net/stat/nf_conntrack summed over CPUs: drop (a full table), early_drop, insert_failed.", "counter")
	c.findingSeverity = d("finding_severity", "Doctor finding by check id: 0 ok, 1 warning, 2 critical, 3 unknown (Nagios codes).", "id")
	c.doctorStatus = d("doctor_status", "The worst doctor finding: 0 ok, 1 warning, 2 critical, 3 unknown.")
	c.alarms = d("alarms_firing", "Alarms firing, by rule and level.", "rule", "level")
	c.collDuration = d("collection_duration_seconds", "How long the last collection took.")
	c.lastCollection = d("last_collection_timestamp_seconds", "When the last collection was taken, in Unix time.")
	c.collErrors = d("collection_errors", "Sources the last collection could not read (the snapshot's errors).")
	c.configOK = d("config_last_reload_successful", "1 when the last configuration load succeeded, 0 when a reload was refused and the previous configuration runs.")
	c.buildInfo = d("build_info", "picket's version; always 1.", "version", "goversion")
	c.feature = d("feature", "1 when the host offers the kernel feature picket probed at start (pidfd, openat2, psi, nftables...), 0 when picket runs its fallback.", "name")
	c.capability = d("capability", "1 when picket holds the capability, 0 when it does not.", "name")
	c.refused = d("action_kind_refused", "1 for each action kind the configuration uses that this host cannot take (the reason is in /healthz).", "kind")
	c.spoolBatches = d("spool_batches", "Notification batches waiting in the spool for delivery.")
	c.spoolBytes = d("spool_bytes", "Bytes of the notification batches waiting in the spool.")
	c.spoolDropped = d("spool_dropped_total", "Notification batches dropped undelivered, by reason: age (older than the spool's max age), count and bytes (the spool was full: the oldest went), permanent (the receiver refused it for good).", "reason")
	c.rateLimited = d("actions_rate_limited_total", "Actions a rate limit refused since picket started, by rule and action kind: the rule wanted to act and picket would not (an administrator is needed).", "rule", "kind")
	// One descriptor for every kind of limit (a registry wants one label
	// set per name): the labels a limit does not have are empty, which
	// Prometheus treats as absent. docs/forecast.md lists them.
	c.exhaustion = d("limit_exhaustion_seconds", "Seconds until the limit is reached at its current trend, as picket fits it (docs/forecast.md); absent when the limit has no trend.",
		"limit", "cgroup", "pid", "comm", "user", "uid", "resource")
	return c
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.all {
		ch <- d
	}
}

// emit makes one sample. Label values from processes are stripped of
// invalid UTF-8 (client_golang refuses it; the text format escapes the rest).
type emit chan<- prometheus.Metric

func (e emit) gauge(d *prometheus.Desc, v float64, labels ...string) {
	e.metric(d, prometheus.GaugeValue, v, labels)
}

func (e emit) counter(d *prometheus.Desc, v float64, labels ...string) {
	e.metric(d, prometheus.CounterValue, v, labels)
}

func (e emit) metric(d *prometheus.Desc, t prometheus.ValueType, v float64, labels []string) {
	for i, l := range labels {
		labels[i] = labelValue(l)
	}
	m, err := prometheus.NewConstMetric(d, t, v, labels...)
	if err != nil {
		m = prometheus.NewInvalidMetric(d, err)
	}
	e <- m
}

func labelValue(s string) string { return strings.ToValidUTF8(s, "\uFFFD") }

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	e := emit(ch)
	e.gauge(c.buildInfo, 1, c.version, runtime.Version())
	h := c.src.Health()
	if !h.LastCollection.IsZero() {
		e.gauge(c.lastCollection, float64(h.LastCollection.UnixNano())/1e9)
		e.gauge(c.collDuration, h.LastDuration.Seconds())
	}
	if h.Config != "" || h.ConfigError != "" {
		ok := 1.0
		if h.ConfigError != "" {
			ok = 0
		}
		e.gauge(c.configOK, ok)
	}
	for _, m := range []struct {
		d  *prometheus.Desc
		of map[string]bool
	}{{c.feature, h.Host.featureMap()}, {c.capability, h.Host.capMap()}} {
		for name, on := range m.of {
			v := 0.0
			if on {
				v = 1
			}
			e.gauge(m.d, v, name)
		}
	}
	for _, r := range h.Refused {
		e.gauge(c.refused, 1, r.Kind)
	}
	if h.SpoolDropped != nil {
		e.gauge(c.spoolBatches, float64(h.SpoolPending))
		e.gauge(c.spoolBytes, float64(h.SpoolBytes))
		for _, r := range slices.Sorted(maps.Keys(h.SpoolDropped)) {
			e.counter(c.spoolDropped, float64(h.SpoolDropped[r]), r)
		}
	}
	for _, k := range slices.SortedFunc(maps.Keys(h.RateLimited), func(a, b RateLimitKey) int {
		return cmp.Or(cmp.Compare(a.Rule, b.Rule), cmp.Compare(a.Kind, b.Kind))
	}) {
		e.counter(c.rateLimited, float64(h.RateLimited[k]), k.Rule, k.Kind)
	}
	if snap := c.src.Snapshot(); snap != nil {
		e.gauge(c.collErrors, float64(len(snap.Errors)))
		c.collectProcesses(e, &snap.Processes)
		c.collectSockets(e, &snap.Sockets)
		c.collectKernel(e, &snap.Kernel)
		c.collectMemory(e, &snap.Memory)
		c.collectBeancounters(e, snap.Beancounters)
		c.collectCgroups(e, snap.Cgroups)
		c.collectKernelLog(e, snap.KernelLog)
		c.collectForecasts(e, snap.Forecasts)
	}
	if rep := c.src.Findings(); rep != nil {
		c.collectFindings(e, rep)
	}
	c.collectAlarms(e, c.src.Alarms())
}

func (h *HostFeatures) featureMap() map[string]bool {
	if h == nil {
		return nil
	}
	return h.Features
}

func (h *HostFeatures) capMap() map[string]bool {
	if h == nil {
		return nil
	}
	return h.Capabilities
}

func (c *collector) collectProcesses(e emit, p *snapshot.Processes) {
	e.gauge(c.processes, float64(p.Total))
	e.gauge(c.threads, float64(p.Threads))
	e.gauge(c.fdUnreadable, float64(p.FDUnreadable))

	// Sorted copies: the snapshot is shared and must stay as it is.
	groups := slices.Clone(p.Groups)
	slices.SortFunc(groups, func(a, b snapshot.Group) int {
		return cmp.Or(cmp.Compare(b.Count, a.Count), cmp.Compare(b.Threads, a.Threads), cmp.Compare(a.User, b.User), cmp.Compare(a.Comm, b.Comm))
	})
	// Two groups can share label values (two uids with one name, or two
	// comms that differ only in invalid UTF-8): summed, as a duplicate
	// series would fail the whole scrape.
	type sums struct{ procs, threads, rss float64 }
	var keys [][2]string
	byKey := map[[2]string]*sums{}
	for i, g := range groups {
		if (i >= c.topGroups && g.Count < c.groupMin) || len(keys) >= maxGroupSeries {
			break
		}
		k := [2]string{labelValue(g.User), labelValue(g.Comm)}
		s, ok := byKey[k]
		if !ok {
			s = &sums{}
			byKey[k] = s
			keys = append(keys, k)
		}
		s.procs += float64(g.Count)
		s.threads += float64(g.Threads)
		s.rss += float64(g.RSSBytes)
	}
	for _, k := range keys {
		s := byKey[k]
		e.gauge(c.groupProcs, s.procs, k[0], k[1])
		e.gauge(c.groupThreads, s.threads, k[0], k[1])
		e.gauge(c.groupRSS, s.rss, k[0], k[1])
	}

	users := slices.Clone(p.Users)
	slices.SortFunc(users, func(a, b snapshot.User) int {
		return cmp.Or(cmp.Compare(b.Threads, a.Threads), cmp.Compare(b.Count, a.Count), cmp.Compare(a.User, b.User))
	})
	seen := map[string]bool{}
	for _, u := range users {
		if len(seen) >= c.topGroups {
			break
		}
		name := labelValue(u.User)
		if seen[name] {
			continue // a second uid with the same name: the heavier one is shown
		}
		seen[name] = true
		e.gauge(c.userProcs, float64(u.Count), name)
		e.gauge(c.userThreads, float64(u.Threads), name)
		if u.NprocLimit > 0 {
			e.gauge(c.userNproc, float64(u.NprocLimit), name)
		}
	}
}

func (c *collector) collectSockets(e emit, s *snapshot.Sockets) {
	for _, t := range socketTypes(s.Totals) {
		e.gauge(c.sockets, float64(t.n), t.name)
	}
	for state, n := range s.TCPStates {
		e.gauge(c.tcpStates, float64(n), state)
	}
	e.gauge(c.netns, float64(s.Namespaces))
	if !c.private {
		return
	}

	holders := slices.Clone(s.Processes)
	slices.SortFunc(holders, func(a, b snapshot.Holder) int {
		return cmp.Or(cmp.Compare(b.Total, a.Total), cmp.Compare(a.PID, b.PID))
	})
	seen := map[int]bool{}
	for _, h := range holders {
		if len(seen) >= c.topHol {
			break
		}
		if seen[h.PID] {
			continue
		}
		seen[h.PID] = true
		pid := strconv.Itoa(h.PID)
		for _, t := range socketTypes(h.SocketCounts) {
			if t.n > 0 {
				e.gauge(c.holderSockets, float64(t.n), pid, h.Comm, h.User, t.name)
			}
		}
		if h.FDs >= 0 {
			e.gauge(c.holderFDs, float64(h.FDs), pid, h.Comm, h.User)
		}
		if h.FDLimit > 0 {
			e.gauge(c.holderMaxFDs, float64(h.FDLimit), pid, h.Comm, h.User)
		}
	}
}

type typed struct {
	name string
	n    int
}

func socketTypes(s snapshot.SocketCounts) []typed {
	return []typed{{"tcp", s.TCP}, {"udp", s.UDP}, {"unix", s.Unix}, {"raw", s.Raw}, {"netlink", s.Netlink}, {"packet", s.Packet}, {"other", s.Other}}
}

// collectKernel leaves out what was not read (a nil part, a zero limit):
// an absent series says "unknown", a zero would say "no room".
func (c *collector) collectKernel(e emit, k *snapshot.Kernel) {
	if st := k.Sockstat; st != nil {
		e.gauge(c.sockUsed, float64(st.SocketsUsed))
		e.gauge(c.tcpInuse, float64(st.TCP.Inuse))
		e.gauge(c.tcpOrphans, float64(st.TCP.Orphan))
		e.gauge(c.tcpTW, float64(st.TCP.TW))
		e.gauge(c.tcpAlloc, float64(st.TCP.Alloc))
		if !st.TCP.NoMem {
			e.gauge(c.tcpMemUsed, float64(st.TCP.MemPages))
		}
		e.gauge(c.udpInuse, float64(st.UDP.Inuse))
		e.gauge(c.udpMem, float64(st.UDP.MemPages))
		e.gauge(c.udpliteInuse, float64(st.UDPLite))
		e.gauge(c.rawInuse, float64(st.RawInuse))
		e.gauge(c.fragInuse, float64(st.FragInuse))
		e.gauge(c.fragB, float64(st.FragMemory))
	}
	if s6 := k.Sockstat6; s6 != nil {
		e.gauge(c.s6TCP, float64(s6.TCP6))
		e.gauge(c.s6UDP, float64(s6.UDP6))
		e.gauge(c.s6UDPLite, float64(s6.UDPLite6))
		e.gauge(c.s6Raw, float64(s6.Raw6))
		e.gauge(c.s6Frag, float64(s6.Frag6))
	}
	for i, level := range []string{"low", "pressure", "high"} {
		if i < len(k.TCPMemPages) {
			e.gauge(c.tcpMem, float64(k.TCPMemPages[i]), level)
		}
	}
	positive := func(d *prometheus.Desc, v int64) {
		if v > 0 {
			e.gauge(d, float64(v))
		}
	}
	positive(c.tcpMaxOrphans, k.TCPMaxOrphans)
	positive(c.pageSize, int64(k.PageSize))
	if f := k.FileNr; f != nil {
		e.gauge(c.fileAlloc, float64(f.Allocated))
		e.gauge(c.fileUnused, float64(f.Unused))
		positive(c.fileMax, f.Max)
	}
	positive(c.nrOpen, k.NrOpen)
	positive(c.pidMax, k.PidMax)
	positive(c.threadsMax, k.ThreadsMax)
	if ct := k.Conntrack; ct != nil {
		e.gauge(c.ctEntries, float64(ct.Count))
		positive(c.ctLimit, ct.Max)
	}
	if n := k.Netstat; n != nil {
		for _, v := range []struct {
			name string
			v    uint64
		}{
			{"TCPAbortOnMemory", n.AbortOnMemory}, {"TCPAbortOnTimeout", n.AbortOnTimeout},
			{"ListenOverflows", n.ListenOverflows}, {"ListenDrops", n.ListenDrops},
			{"TCPReqQFullDoCookies", n.ReqQFullDoCookies}, {"TCPReqQFullDrop", n.ReqQFullDrop},
			{"TCPTimeWaitOverflow", n.TimeWaitOverflow}, {"TCPMemoryPressures", n.MemoryPressures},
		} {
			e.counter(c.netstat, float64(v.v), v.name)
		}
	}
	if st := k.ConntrackStat; st != nil {
		e.counter(c.ctStat, float64(st.Drop), "drop")
		e.counter(c.ctStat, float64(st.EarlyDrop), "early_drop")
		e.counter(c.ctStat, float64(st.InsertFailed), "insert_failed")
	}
}

// collectKernelLog exports the kernel log's counts; kinds are the
// catalogue's (a dozen), never a name from a message.
func (c *collector) collectKernelLog(e emit, l *snapshot.KernelLog) {
	if l == nil {
		return
	}
	ok := 0.0
	if l.Available {
		ok = 1
	}
	e.gauge(c.kernelOK, ok)
	if !l.Available && l.Records == 0 {
		return
	}
	for _, k := range l.Kinds {
		e.counter(c.kernelMessages, float64(k.Count), k.Kind)
	}
	for _, v := range []struct {
		class string
		n     uint64
	}{{"kernel", l.Records}, {"user", l.User.Count}, {"unknown", l.Unknown}, {"lost", l.Lost}, {"malformed", l.Malformed}, {"too_long", l.TooLong}} {
		e.counter(c.kernelRecords, float64(v.n), v.class)
	}
}

func (c *collector) collectMemory(e emit, m *snapshot.Memory) {
	if m.MemTotalBytes > 0 { // meminfo was read
		for _, v := range []struct {
			d *prometheus.Desc
			b uint64
		}{
			{c.memTotal, m.MemTotalBytes}, {c.memFree, m.MemFreeBytes}, {c.memAvail, m.MemAvailableBytes},
			{c.memBuffers, m.BuffersBytes}, {c.memCached, m.CachedBytes}, {c.memCommitted, m.CommittedASBytes},
			{c.memCommitLimit, m.CommitLimitBytes}, {c.swapTotal, m.SwapTotalBytes}, {c.swapFree, m.SwapFreeBytes},
		} {
			if v.d == c.memAvail && m.MemAvailableSource == snapshot.MemAvailableUnknown {
				continue // not 0: absent, as node_exporter leaves out what it cannot read
			}
			e.gauge(v.d, float64(v.b))
		}
	}
	for _, k := range vmstatCounters {
		if v, ok := m.VMStat[k]; ok {
			e.counter(c.vmstat[k], float64(v))
		}
	}
	for res, p := range m.PSI {
		// The kernel prints averages as percentages and totals in µs.
		for _, w := range []struct {
			name       string
			some, full float64
		}{{"10s", p.SomeAvg10, p.FullAvg10}, {"60s", p.SomeAvg60, p.FullAvg60}, {"300s", p.SomeAvg300, p.FullAvg300}} {
			e.gauge(c.psiSome, w.some/100, res, w.name)
			if p.HasFull {
				e.gauge(c.psiFull, w.full/100, res, w.name)
			}
		}
		e.counter(c.psiSomeSec, float64(p.SomeTotal)/1e6, res)
		if p.HasFull {
			e.counter(c.psiFullSec, float64(p.FullTotal)/1e6, res)
		}
	}
}

func (c *collector) collectBeancounters(e emit, bs []snapshot.Beancounter) {
	seen := map[[2]string]bool{}
	for _, b := range bs {
		// The kernel prints "dummy" rows as placeholders, several per
		// container, all zero.
		k := [2]string{labelValue(b.UID), labelValue(b.Resource)}
		if b.Resource == "dummy" || seen[k] {
			continue
		}
		seen[k] = true
		e.gauge(c.bcHeld, float64(b.Held), k[0], k[1])
		e.gauge(c.bcMaxHeld, float64(b.MaxHeld), k[0], k[1])
		e.gauge(c.bcBarrier, float64(b.Barrier), k[0], k[1])
		e.gauge(c.bcLimit, float64(b.Limit), k[0], k[1])
		e.counter(c.bcFailcnt, float64(b.Failcnt), k[0], k[1])
	}
}

// collectCgroups exposes the limited cgroups and the heaviest others
// (see the cardinality note above).
func (c *collector) collectCgroups(e emit, cgs []snapshot.Cgroup) {
	pick := map[int]bool{}
	var order []int
	add := func(i int) {
		if !pick[i] && len(order) < maxCgroupSeries {
			pick[i] = true
			order = append(order, i)
		}
	}
	for i := range cgs {
		if cgs[i].Limited() && cgs[i].Path != "/" {
			add(i)
		}
	}
	heaviest := func(by func(*snapshot.Cgroup) uint64) {
		idx := make([]int, 0, len(cgs))
		for i := range cgs {
			if cgs[i].Path != "/" && by(&cgs[i]) > 0 {
				idx = append(idx, i)
			}
		}
		slices.SortStableFunc(idx, func(a, b int) int { return cmp.Compare(by(&cgs[b]), by(&cgs[a])) })
		for _, i := range idx[:min(len(idx), c.topGroups)] {
			add(i)
		}
	}
	val := func(p *uint64) uint64 {
		if p == nil {
			return 0
		}
		return *p
	}
	heaviest(func(g *snapshot.Cgroup) uint64 { return val(g.PidsCurrent) })
	heaviest(func(g *snapshot.Cgroup) uint64 { return val(g.MemoryCurrent) })
	seen := map[[2]string]bool{}
	for _, i := range order {
		g := &cgs[i]
		l := [2]string{labelValue(g.Path), labelValue(g.Unit)}
		if seen[l] {
			continue // two paths that differ only in invalid UTF-8
		}
		seen[l] = true
		opt := func(d *prometheus.Desc, p *uint64, counter bool) {
			if p == nil {
				return
			}
			if counter {
				e.counter(d, float64(*p), l[0], l[1])
			} else {
				e.gauge(d, float64(*p), l[0], l[1])
			}
		}
		e.gauge(c.cgProcs, float64(g.Processes), l[0], l[1])
		opt(c.cgPids, g.PidsCurrent, false)
		opt(c.cgPidsMax, g.PidsMax, false)
		opt(c.cgForks, g.PidsEventsMax, true)
		opt(c.cgMem, g.MemoryCurrent, false)
		opt(c.cgMemMax, g.MemoryMax, false)
		opt(c.cgMemHigh, g.MemoryHigh, false)
		opt(c.cgOOM, g.OOMKill, true)
		opt(c.cgFailcnt, g.MemoryFailcnt, true)
		if n, ok := g.MemoryEvents["max"]; ok {
			e.counter(c.cgMemAtMax, float64(n), l[0], l[1])
		}
		frozen := 0.0
		if g.Frozen {
			frozen = 1
		}
		e.gauge(c.cgFrozen, frozen, l[0], l[1])
	}
}

func (c *collector) collectFindings(e emit, rep *doctor.Report) {
	e.gauge(c.doctorStatus, float64(rep.Status.ExitCode()))
	seen := map[string]bool{}
	for _, f := range rep.Findings {
		if seen[f.ID] {
			continue
		}
		seen[f.ID] = true
		e.gauge(c.findingSeverity, float64(f.Severity.ExitCode()), f.ID)
	}
}

// collectAlarms counts only the firing: a Source may also list recently
// resolved alarms for the API.
func (c *collector) collectAlarms(e emit, as []alarm.Alarm) {
	type key struct{ rule, level string }
	var keys []key
	n := map[key]int{}
	for _, a := range as {
		if a.Status != alarm.Firing {
			continue
		}
		k := key{labelValue(a.Rule), a.Level.String()}
		if n[k] == 0 {
			keys = append(keys, k)
		}
		n[k]++
	}
	for _, k := range keys {
		e.gauge(c.alarms, float64(n[k]), k.rule, k.level)
	}
}

// maxForecastSeries bounds picket_limit_exhaustion_seconds: the soonest
// first (the snapshot's order), a fleet's storm of leaking holders cut off.
const maxForecastSeries = 256

func (c *collector) collectForecasts(e emit, fs []snapshot.Forecast) {
	for i, f := range fs {
		if i >= maxForecastSeries {
			break
		}
		if f.PID != 0 && !c.private {
			continue
		}
		pid := ""
		if f.PID != 0 {
			pid = strconv.Itoa(f.PID)
		}
		e.gauge(c.exhaustion, f.ETASeconds, f.Limit, f.Cgroup, pid, f.Comm, f.User, f.UID, f.Resource)
	}
}
