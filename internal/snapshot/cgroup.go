package snapshot

import "sort"

// Cgroup is one control group, merged over the hierarchies that have it
// (on a v1 or hybrid host systemd makes the same path in each
// controller's hierarchy). Values the kernel prints as "max" (no limit)
// are absent, never a made-up number; so are files this cgroup does not
// have (a controller not enabled for it, an older kernel).
type Cgroup struct {
	// Path is the cgroup's path as /proc/PID/cgroup prints it. Cgroups
	// are named by whoever creates them: escape it to print.
	Path string `json:"path"`
	// Unit is the systemd unit the path belongs to (apache2.service,
	// session-3.scope, user-1000.slice), absent when none.
	Unit string `json:"unit,omitempty"`
	// UserUnitOf is the uid whose user manager (user@UID.service) the unit
	// belongs to, absent for the system manager's units.
	UserUnitOf string     `json:"user_unit_of,omitempty"`
	Container  *Container `json:"container,omitempty"`
	// Hierarchies lists where the path was found: "unified" and the v1
	// controllers ("pids", "memory", "cpu,cpuacct", "freezer").
	Hierarchies []string `json:"hierarchies"`
	// Processes and Threads count what the process walk found in this
	// cgroup and below it, as pids.current counts tasks.
	Processes int `json:"processes"`
	Threads   int `json:"threads"`

	// pids controller: pids.current, pids.max, pids.peak, and pids.events'
	// max, the forks refused at pids.max here or above (v1 and v2).
	PidsCurrent   *uint64 `json:"pids_current,omitempty"`
	PidsMax       *uint64 `json:"pids_max,omitempty"`
	PidsPeak      *uint64 `json:"pids_peak,omitempty"`
	PidsEventsMax *uint64 `json:"pids_events_max,omitempty"`

	// memory controller, in bytes. v2: memory.current, .max, .high,
	// .peak; v1: memory.usage_in_bytes, .limit_in_bytes,
	// .max_usage_in_bytes (no high).
	MemoryCurrent *uint64 `json:"memory_current,omitempty"`
	MemoryMax     *uint64 `json:"memory_max,omitempty"`
	MemoryHigh    *uint64 `json:"memory_high,omitempty"`
	MemoryPeak    *uint64 `json:"memory_peak,omitempty"`
	// MemoryEvents is v2's memory.events with the kernel's keys (low,
	// high, max, oom, oom_kill, oom_group_kill): cumulative, hierarchical.
	MemoryEvents map[string]uint64 `json:"memory_events,omitempty"`
	// OOMKill is processes the OOM killer killed in this cgroup: v2's
	// memory.events oom_kill, v1's memory.oom_control oom_kill.
	OOMKill *uint64 `json:"oom_kill,omitempty"`
	// UnderOOM is v1's memory.oom_control under_oom: the cgroup is in OOM
	// now (with oom_kill_disable its tasks wait in the kernel).
	UnderOOM bool `json:"under_oom,omitempty"`
	// MemoryFailcnt is v1's memory.failcnt: charges that hit the limit.
	MemoryFailcnt *uint64 `json:"memory_failcnt,omitempty"`
	// MemoryStat holds memory.stat's anon, file, sock, shmem and
	// inactive_file (v1: total_rss, total_cache, total_shmem and
	// total_inactive_file under the v2 names), in bytes.
	MemoryStat  map[string]uint64 `json:"memory_stat,omitempty"`
	SwapCurrent *uint64           `json:"swap_current,omitempty"`
	SwapMax     *uint64           `json:"swap_max,omitempty"`
	// KmemTCP is v1's memory.kmem.tcp.*: TCP buffer memory charged here.
	KmemTCP *KmemTCP `json:"kmem_tcp,omitempty"`

	// cpu controller: the quota (absent when unlimited) and cpu.stat's
	// throttling: nr_periods, nr_throttled, throttled_usec (v1's
	// throttled_time, in ns, converted), usage_usec.
	CPUMax  *CPUMax           `json:"cpu_max,omitempty"`
	CPUStat map[string]uint64 `json:"cpu_stat,omitempty"`

	// Pressure is the cgroup's PSI files (memory, cpu, io), v2 only.
	Pressure map[string]PSI `json:"pressure,omitempty"`

	// Frozen: v2's cgroup.events frozen, v1's freezer.state FROZEN.
	Frozen bool `json:"frozen,omitempty"`
	// FreezerState is v1's freezer.state (THAWED, FREEZING, FROZEN).
	FreezerState string `json:"freezer_state,omitempty"`
}

// Container is what a cgroup path says of a container.
type Container struct {
	Runtime string `json:"runtime"`           // docker, podman, containerd, cri-o, lxc, kubernetes
	ID      string `json:"id,omitempty"`      // 64 hex digits; an LXC container's name
	Pod     string `json:"pod_uid,omitempty"` // Kubernetes pod UID
}

// KmemTCP is v1's memory.kmem.tcp.* in bytes; Limit absent when unlimited.
type KmemTCP struct {
	Usage    uint64  `json:"usage"`
	Limit    *uint64 `json:"limit,omitempty"`
	Failcnt  uint64  `json:"failcnt"`
	MaxUsage uint64  `json:"max_usage"`
}

// CPUMax is a CPU quota: Quota µs of CPU time per Period µs (cpu.max;
// v1's cpu.cfs_quota_us and cpu.cfs_period_us).
type CPUMax struct {
	QuotaUsec  uint64 `json:"quota_usec"`
	PeriodUsec uint64 `json:"period_usec"`
}

// CgroupLayout says how the host's hierarchies are mounted.
type CgroupLayout struct {
	// Mode is unified, hybrid or legacy (systemd's words).
	Mode string `json:"mode"`
	// Unified is the cgroup2 mount point, absent without one;
	// UnifiedControllers its root's cgroup.controllers.
	Unified            string   `json:"unified,omitempty"`
	UnifiedControllers []string `json:"unified_controllers,omitempty"`
	// V1 maps each v1 hierarchy ("pids", "cpu,cpuacct", "name=systemd")
	// to its mount point.
	V1 map[string]string `json:"v1,omitempty"`
	// Read is how many cgroups were read; Skipped how many were left out
	// by the bound on a look's cost (the deepest ones first).
	Read    int `json:"read"`
	Skipped int `json:"skipped,omitempty"`
	// Partial: a light look read only the cgroups the last full look
	// found with a limit (or frozen); the others are absent, not gone.
	Partial bool `json:"partial,omitempty"`
}

// Limited reports whether a limit is set on the cgroup: pids.max,
// memory.max or memory.high.
func (c *Cgroup) Limited() bool {
	return c.PidsMax != nil || c.MemoryMax != nil || c.MemoryHigh != nil
}

// WorkingSet is memory.current less inactive file pages, the memory the
// cgroup cannot give back without swapping or being killed (cAdvisor's
// container_memory_working_set_bytes, what the kubelet evicts on); 0 when
// memory.current is not known.
func (c *Cgroup) WorkingSet() uint64 {
	if c.MemoryCurrent == nil {
		return 0
	}
	cur := *c.MemoryCurrent
	if inact, ok := c.MemoryStat["inactive_file"]; ok && inact < cur {
		return cur - inact
	}
	return cur
}

// UnitGroup is the processes of one systemd unit together, beside user ×
// command: what `systemctl status UNIT` counts as its tasks, and the fds
// and sockets they hold (sockets only on a full look).
type UnitGroup struct {
	Unit      string `json:"unit"`
	Processes int    `json:"processes"`
	Threads   int    `json:"threads"`
	FDs       int    `json:"fds"`
	Sockets   int    `json:"sockets"`
	RSSBytes  uint64 `json:"rss_bytes"`
}

// PidsPercent is pids.current against pids.max × 100; ok is false without
// a limit.
func (c *Cgroup) PidsPercent() (float64, bool) {
	if c.PidsMax == nil || c.PidsCurrent == nil || *c.PidsMax == 0 {
		return 0, false
	}
	return float64(*c.PidsCurrent) * 100 / float64(*c.PidsMax), true
}

// MemoryPercent is the working set against memory.max (else
// memory.high) × 100; ok is false without either.
func (c *Cgroup) MemoryPercent() (float64, bool) {
	lim := c.MemoryMax
	if lim == nil {
		lim = c.MemoryHigh
	}
	if lim == nil || *lim == 0 || c.MemoryCurrent == nil {
		return 0, false
	}
	return float64(c.WorkingSet()) * 100 / float64(*lim), true
}

// Nearness is the higher of PidsPercent and MemoryPercent: how close the
// cgroup is to any of its limits.
func (c *Cgroup) Nearness() float64 {
	p, _ := c.PidsPercent()
	m, _ := c.MemoryPercent()
	return max(p, m)
}

// Refusals is what the kernel refused the cgroup so far: forks at
// pids.max (pids.events max), OOM kills, and v1 charges at the limit
// (memory.failcnt).
func (c *Cgroup) Refusals() (forks, oomKills, failcnt uint64) {
	if c.PidsEventsMax != nil {
		forks = *c.PidsEventsMax
	}
	if c.OOMKill != nil {
		oomKills = *c.OOMKill
	}
	if c.MemoryFailcnt != nil {
		failcnt = *c.MemoryFailcnt
	}
	return forks, oomKills, failcnt
}

// NearLimit lists the cgroups with a limit, nearest to it first, that are
// at least minPercent of the way there or have had something refused;
// at most n (0: all).
func NearLimit(cgs []Cgroup, minPercent float64, n int) []*Cgroup {
	var out []*Cgroup
	for i := range cgs {
		c := &cgs[i]
		f, o, fc := c.Refusals()
		if c.Limited() && (c.Nearness() >= minPercent || f+o+fc > 0) {
			out = append(out, c)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Nearness() > out[j].Nearness() })
	if n > 0 && len(out) > n {
		out = out[:n]
	}
	return out
}
