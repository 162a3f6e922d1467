package doctor

import (
	"fmt"
	"strings"

	"github.com/picket-guard/picket/internal/snapshot"
	"github.com/picket-guard/picket/internal/term"
)

// pidMaxCeiling is PID_MAX_LIMIT on 64-bit kernels (include/linux/threads.h).
const pidMaxCeiling = 4 << 20

// ProcessStorm finds user × command groups that are abnormally large — the
// imapd storms of docs/stories.md, found by PIKT with `ps -eo user,comm | sort | uniq -c`
// and thresholds of 20 to 90 per group — and sets every task against the
// limits fork() checks in copy_process() (kernel/fork.c): a pid from
// kernel.pid_max (alloc_pid() in kernel/pid.c; threads take pids too),
// a slot under kernel.threads-max, and for a non-root user a slot under its
// RLIMIT_NPROC, which counts the user's threads. A big group is a warning
// (picket cannot know your normal); a limit about to refuse fork() is
// graded by the limit percentages.
type ProcessStorm struct{}

func (ProcessStorm) ID() string { return "process-storm" }

func (ProcessStorm) Run(in Input) Finding {
	s := in.Cur
	t := in.Thresholds
	P := s.Processes
	if P.Total == 0 {
		return unknownFinding("no process scan", "The processes under /proc could not be read.", Evidence{})
	}
	k := s.Kernel

	// Groups over both thresholds; kernel threads (one comm per CPU, such
	// as kworker) are the kernel's business, not a storm.
	var candidates []snapshot.Group
	for _, g := range P.Groups {
		if g.Count >= t.StormMinCount && float64(g.Count)*100 >= t.StormMinPercent*float64(P.Total) {
			candidates = append(candidates, g)
		}
	}
	keys := make([]groupKey, len(candidates))
	for i, g := range candidates {
		keys[i] = groupKey{g.UID, g.Comm}
	}
	det := groupDetails(s, keys)
	var storms []snapshot.Group
	for i, g := range candidates {
		if !det[keys[i]].kernelOnly {
			storms = append(storms, g)
		}
	}
	stormRows := groupRows(s, in.Prev, storms)
	topN := P.Groups
	if len(topN) > 5 {
		topN = topN[:5]
	}

	sev := OK
	var limitNotes []string
	tasks := int64(P.Threads)
	if l := limitLevel(tasks, k.PidMax, t); l != OK {
		sev = worse(sev, l)
		limitNotes = append(limitNotes, fmt.Sprintf("%d tasks use %.1f%% of kernel.pid_max %d", tasks, percent(float64(tasks), float64(k.PidMax)), k.PidMax))
	}
	if l := limitLevel(tasks, k.ThreadsMax, t); l != OK {
		sev = worse(sev, l)
		limitNotes = append(limitNotes, fmt.Sprintf("%d threads use %.1f%% of kernel.threads-max %d", tasks, percent(float64(tasks), float64(k.ThreadsMax)), k.ThreadsMax))
	}
	users := UserRows{}
	nearUsers := UserRows{}
	for _, u := range P.Users {
		r := UserRow{User: u.User, UID: u.UID, Processes: u.Count, Threads: u.Threads, NprocLimit: u.NprocLimit}
		if u.NprocLimit > 0 {
			r.Percent = percent(float64(u.Threads), float64(u.NprocLimit))
		}
		if len(users) < 5 {
			users = append(users, r)
		}
		// Root (and CAP_SYS_RESOURCE) is exempt from RLIMIT_NPROC.
		if u.UID == 0 || u.NprocLimit <= 0 {
			continue
		}
		if l := limitLevel(int64(u.Threads), u.NprocLimit, t); l != OK {
			sev = worse(sev, l)
			nearUsers = append(nearUsers, r)
			limitNotes = append(limitNotes, fmt.Sprintf("user %s runs %d threads, %.1f%% of its RLIMIT_NPROC %d",
				term.Escape(u.User), u.Threads, r.Percent, u.NprocLimit))
		}
	}
	if len(storms) > 0 {
		sev = worse(sev, Warning)
	}

	// The metrics grade as the verdict does: the largest group against the
	// storm rule, every task against pid_max and threads-max, and the user
	// nearest its RLIMIT_NPROC.
	isStorm := func(n int64) bool {
		return n >= int64(t.StormMinCount) && float64(n)*100 >= t.StormMinPercent*float64(P.Total)
	}
	largest := gauge("largest_group", float64(largestGroup(s)), float64(P.Total))
	largest.Warn = countAtLeast(max(float64(t.StormMinCount), t.StormMinPercent*float64(P.Total)/100), isStorm)
	pids := gauge("pids", float64(tasks), float64(k.PidMax))
	pids.Warn, pids.Crit = limitRanges(k.PidMax, t)
	threads := gauge("threads", float64(tasks), float64(k.ThreadsMax))
	threads.Warn, threads.Crit = limitRanges(k.ThreadsMax, t)
	nproc, limitedUsers := 0.0, 0
	for _, u := range P.Users {
		if u.UID != 0 && u.NprocLimit > 0 {
			limitedUsers++
			nproc = max(nproc, share(int64(u.Threads), u.NprocLimit))
		}
	}
	nprocM := percentMetric("user_nproc_percent", nproc)
	if limitedUsers > 0 {
		nprocM.Warn, nprocM.Crit = atLeast(t.LimitWarnPercent), atLeast(t.LimitCritPercent)
	}
	metrics := []Metric{largest, pids, threads, nprocM,
		gauge("processes", float64(P.Total), 0), gauge("storms", float64(len(stormRows)), 0)}

	ev := Evidence{}
	ev.Add("processes", P.Total)
	ev.Add("threads", P.Threads)
	ev.Add("pid_max", k.PidMax)
	ev.Add("pid_max_percent", percent(float64(tasks), float64(k.PidMax)))
	ev.Add("threads_max", k.ThreadsMax)
	ev.Add("threads_max_percent", percent(float64(tasks), float64(k.ThreadsMax)))
	ev.Add("min_count", t.StormMinCount)
	ev.Add("min_percent", t.StormMinPercent)
	ev.Add("storms", stormRows)
	ev.Add("top_groups", groupRows(s, in.Prev, topN))
	ev.Add("users", users)
	ev.Add("users_near_nproc", nearUsers)

	f := Finding{Severity: sev, Evidence: ev, Metrics: metrics}
	switch {
	case len(stormRows) > 0:
		g := stormRows[0]
		f.Title = fmt.Sprintf("%d %s processes of user %s (%.1f%% of %d)", g.Count, term.Escape(g.Comm), term.Escape(g.User), g.SharePercent, P.Total)
		if g.ParentPID > 0 {
			f.Title += fmt.Sprintf(", %d forked by pid %d (%s)", g.FromParent, g.ParentPID, term.Escape(g.ParentComm))
		}
		if g.Unit != "" {
			f.Title += " in unit " + term.Escape(g.Unit)
		}
		if len(stormRows) > 1 {
			f.Title += fmt.Sprintf(", and %d more groups", len(stormRows)-1)
		}
		if len(limitNotes) > 0 {
			f.Title += "; " + limitNotes[0]
		}
	case len(limitNotes) > 0:
		f.Title = limitNotes[0]
	default:
		f.Title = fmt.Sprintf("%d processes, %d threads; no group over %d and %.0f%%", P.Total, P.Threads, t.StormMinCount, t.StormMinPercent)
	}

	what := "A storm is one command multiplying under one user, like the imapd storms of a mail server, where imapd processes of " +
		"a single user multiplied until the machine fell over, and PIKT counted `ps -eo user,comm | sort | uniq -c` to " +
		"catch them. Every process and thread also needs a pid below kernel.pid_max and a slot under kernel.threads-max, and " +
		"a non-root user's threads are capped by its RLIMIT_NPROC: at any of these copy_process() in kernel/fork.c fails and " +
		"fork() returns EAGAIN (\"Resource temporarily unavailable\"), for the storm and for everything else, such as the " +
		"administrator's ssh login."
	var here []string
	for _, g := range stormRows {
		line := fmt.Sprintf("%s × %s: %d processes, %.1f%% of all", term.Escape(g.User), term.Escape(g.Comm), g.Count, g.SharePercent)
		if g.CountDelta != nil {
			line += fmt.Sprintf(", %+d over the interval", *g.CountDelta)
		}
		if g.StartedLastMinute > 0 {
			line += fmt.Sprintf(", %d started in the last minute", g.StartedLastMinute)
		}
		if g.ParentPID > 0 {
			line += fmt.Sprintf(", %d of them children of pid %d (%s)", g.FromParent, g.ParentPID, term.Escape(g.ParentComm))
		}
		if g.Unit != "" {
			line += ", in the systemd unit " + term.Escape(g.Unit) + " (its TasksMax= caps it: see cgroup-limits)"
		}
		here = append(here, line)
	}
	here = append(here, limitNotes...)
	now := ""
	if len(here) > 0 {
		now = "Here: " + strings.Join(here, "; ") + "."
	}
	f.Explanation = paragraphs(what, now)
	if sev == OK {
		return f
	}
	var fix []string
	var comms []string
	for i, g := range stormRows {
		if i >= 3 {
			break
		}
		comms = append(comms, g.Comm)
		fix = appendNew(fix, psLine(g.ParentPID, g.UID))
	}
	fix = append(fix, serviceFix(comms...)...)
	for _, u := range nearUsers {
		fix = append(fix, fmt.Sprintf("# uid %d is near its RLIMIT_NPROC %d: stop the storm, or raise nproc in /etc/security/limits.d/ or LimitNPROC= in its unit", u.UID, u.NprocLimit))
	}
	if limitLevel(tasks, k.PidMax, t) != OK && k.PidMax < pidMaxCeiling {
		n := min(max(readableCeil(tasks*4), k.PidMax), pidMaxCeiling)
		fix = append(fix, fmt.Sprintf("sysctl -w kernel.pid_max=%d", n),
			fmt.Sprintf("echo 'kernel.pid_max = %d' > /etc/sysctl.d/60-pid-max.conf", n))
	}
	if limitLevel(tasks, k.ThreadsMax, t) != OK {
		n := readableCeil(tasks * 2)
		fix = append(fix, "# threads-max is sized from RAM at boot: raising it lets a storm eat more memory",
			fmt.Sprintf("sysctl -w kernel.threads-max=%d", n))
	}
	f.Fix = fix
	return f
}

// largestGroup is the process count of the largest user × command group
// that is not made of kernel threads alone (kworker and friends, one per
// CPU, are never a storm).
func largestGroup(s *snapshot.Snapshot) int {
	userland := map[groupKey]bool{}
	seen := map[groupKey]bool{}
	for _, p := range s.Processes.List {
		k := groupKey{p.UID, p.Comm}
		seen[k] = true
		if !p.KernelThread {
			userland[k] = true
		}
	}
	most := 0
	for _, g := range s.Processes.Groups {
		k := groupKey{g.UID, g.Comm}
		if seen[k] && !userland[k] {
			continue
		}
		most = max(most, g.Count)
	}
	return most
}
