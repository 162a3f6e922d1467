package doctor

import (
	"fmt"
	"sort"

	"github.com/picket-guard/picket/internal/snapshot"
	"github.com/picket-guard/picket/internal/term"
)

// FDExhaustion checks both fd limits an open() or socket() can hit: the
// host's fs.file-max, against the allocated count in /proc/sys/fs/file-nr
// (alloc_empty_file() in fs/file_table.c fails with ENFILE and logs
// "VFS: file-max limit N reached"; root is exempt), and each process's own
// RLIMIT_NOFILE (alloc_fd() in fs/file.c fails with EMFILE). Sockets are
// files: a socket leak ends here outside OpenVZ. Graded by
// the limit percentages (default 80 % warning, 95 % critical).
type FDExhaustion struct{}

func (FDExhaustion) ID() string { return "fd-exhaustion" }

func (FDExhaustion) Run(in Input) Finding {
	s := in.Cur
	t := in.Thresholds
	k := s.Kernel
	if k.FileNr == nil {
		why := "The host's open files and fs.file-max are /proc/sys/fs/file-nr, which could not be read."
		if e, ok := s.SourceError(snapshot.SourceLimits); ok {
			why += " " + term.Escape(e)
		}
		return unknownFinding("file-nr not readable", why, Evidence{})
	}
	fn := *k.FileNr
	sev := limitLevel(fn.Allocated, fn.Max, t)

	near := FDRows{}
	known := 0
	var worst Severity
	fullest := 0.0 // the highest share of its own RLIMIT_NOFILE a process uses
	for _, p := range s.Processes.List {
		if p.KernelThread || p.FDLimit <= 0 || p.FDs < 0 {
			continue
		}
		known++
		fullest = max(fullest, share(int64(p.FDs), p.FDLimit))
		l := limitLevel(int64(p.FDs), p.FDLimit, t)
		if l == OK {
			continue
		}
		worst = worse(worst, l)
		near = append(near, fdRow(p))
	}
	sort.SliceStable(near, func(i, j int) bool { return near[i].Percent > near[j].Percent })
	listed := near
	if len(listed) > t.Top {
		listed = listed[:t.Top]
	}
	sev = worse(sev, worst)

	ev := Evidence{}
	ev.Add("allocated", fn.Allocated)
	ev.Add("file_max", fn.Max)
	ev.Add("percent", percent(float64(fn.Allocated), float64(fn.Max)))
	ev.Add("nr_open", k.NrOpen)
	ev.Add("processes_with_known_limit", known)
	ev.Add("processes_unreadable", s.Processes.FDUnreadable)
	ev.Add("processes_near_limit", listed)
	ev.Add("top_fd_holders", topFDRows(s, min(t.Top, 5)))

	files := gauge("open_files", float64(fn.Allocated), float64(fn.Max))
	files.Warn, files.Crit = limitRanges(fn.Max, t)
	procs := percentMetric("process_fd_percent", fullest)
	if known > 0 {
		procs.Warn, procs.Crit = atLeast(t.LimitWarnPercent), atLeast(t.LimitCritPercent)
	}
	f := Finding{Severity: sev, Evidence: ev, Metrics: []Metric{
		files, procs,
		gauge("processes_near_limit", float64(len(near)), float64(known)),
		gauge("nr_open", float64(k.NrOpen), 0),
	}}
	hostLevel := limitLevel(fn.Allocated, fn.Max, t)
	switch {
	case hostLevel != OK:
		f.Title = fmt.Sprintf("%d open files, %.1f%% of fs.file-max %d", fn.Allocated, percent(float64(fn.Allocated), float64(fn.Max)), fn.Max)
		if len(near) > 0 {
			f.Title += fmt.Sprintf("; %d processes near their own limit", len(near))
		}
	case len(near) > 0:
		p := near[0]
		f.Title = fmt.Sprintf("pid %d (%s) has %d of its %d fds open (%.1f%%)", p.PID, term.Escape(p.Comm), p.FDs, p.FDLimit, p.Percent)
		if len(near) > 1 {
			f.Title += fmt.Sprintf(", and %d more processes near their limit", len(near)-1)
		}
	default:
		f.Title = fmt.Sprintf("%d open files of fs.file-max %d; no process at %.0f%% of its RLIMIT_NOFILE", fn.Allocated, fn.Max, t.LimitWarnPercent)
	}
	what := "Every open file, socket and pipe takes a file handle from the host's pool (fs.file-max; the first field of " +
		"file-nr is how many are allocated) and an fd under its process's RLIMIT_NOFILE. At file-max, alloc_empty_file() " +
		"refuses new files to everyone but root with ENFILE (\"VFS: file-max limit reached\"); at its own limit a process's " +
		"open(), socket() and accept() fail with EMFILE (\"Too many open files\"), and a server stops accepting connections. " +
		"fs.nr_open caps how far a process's limit can be raised."
	var note string
	if known < len(s.Processes.List) {
		note = fmt.Sprintf("A process's limit is read only for those holding many fds (%d processes here); a process with few fds "+
			"is not near any sensible limit.", known)
	}
	f.Explanation = paragraphs(what, note)
	if sev == OK {
		return f
	}
	if hostLevel != OK {
		n := readableCeil(max(fn.Allocated*2, fn.Max))
		f.Fix = append(f.Fix, fmt.Sprintf("sysctl -w fs.file-max=%d", n),
			fmt.Sprintf("echo 'fs.file-max = %d' > /etc/sysctl.d/60-file-max.conf", n))
	}
	for i, p := range near {
		if i >= 3 {
			break
		}
		n := readableCeil(int64(p.FDs) * 2)
		if k.NrOpen > 0 {
			n = min(n, k.NrOpen)
		}
		f.Fix = append(f.Fix,
			fmt.Sprintf("ls -l /proc/%d/fd | awk '{print $NF}' | cut -d: -f1 | sort | uniq -c | sort -rn | head   # what pid %d holds open", p.PID, p.PID),
			fmt.Sprintf("prlimit --pid %d --nofile=%d:%d   # now; a leak will reach it again", p.PID, n, n))
	}
	if len(near) > 0 {
		f.Fix = append(f.Fix, "# persist: LimitNOFILE= in the service's systemd unit (systemctl edit), or nofile in /etc/security/limits.d/")
	}
	return f
}
