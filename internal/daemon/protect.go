package daemon

import (
	"fmt"
	"log/slog"
	"os"
	"runtime/debug"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/picket-guard/picket/internal/secpath"
	"github.com/picket-guard/picket/internal/snapshot"
)

// protect makes picket hard to kill by the exhaustion it watches, the way
// earlyoom protects itself: out of the OOM killer's reach, its memory
// locked so a thrashing box cannot page it out, and file descriptors to
// spare when the system runs out. Each step is best effort and logged.
func protect(log *slog.Logger, oomScoreAdj int, mlock bool) (release func(), locked bool) {
	if err := os.WriteFile("/proc/self/oom_score_adj", []byte(strconv.Itoa(oomScoreAdj)), 0); err != nil {
		log.Warn("cannot set oom_score_adj (needs CAP_SYS_RESOURCE to lower it)", "want", oomScoreAdj, "err", err)
	} else {
		log.Info("oom_score_adj set", "value", oomScoreAdj)
	}
	if mlock {
		locked = lockMemory(log)
	}
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err == nil && lim.Cur < lim.Max {
		lim.Cur = lim.Max
		if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &lim); err == nil {
			log.Info("fd limit raised", "nofile", lim.Cur)
		}
	}
	// A reserve of descriptors, given back when the daemon stops so the
	// journal and spool can still be flushed if the fd table filled up.
	var reserve []*os.File
	for i := 0; i < 8; i++ {
		f, err := os.Open(os.DevNull)
		if err != nil {
			break
		}
		reserve = append(reserve, f)
	}
	return func() {
		for _, f := range reserve {
			f.Close()
		}
	}, locked
}

// strictModes refuses a configuration file that someone other than root
// (or picket's own user) could have written, checking the file as opened
// and every directory above it (sshd's StrictModes, secpath): rules can
// kill processes and run programs as root.
func strictModes(files []string) error {
	for _, f := range files {
		if err := secpath.File(f); err != nil {
			return fmt.Errorf("%w: refusing a configuration others could change", err)
		}
	}
	return nil
}

// lockMemory locks every page picket has and will touch.
//
// MCL_ONFAULT (Linux 4.4): lock pages as they are touched instead of
// faulting in the whole binary and every reservation the Go runtime maps
// up front (that was 24 MiB of RSS, most of it code the daemon never
// runs). An older kernel refuses the flag with EINVAL: it gets the whole
// lock. Before locking, the binary's pages that start-up faulted in are
// dropped (dropText).
func lockMemory(log *slog.Logger) bool {
	dropText(log, binaryMappings())
	err := unix.Mlockall(unix.MCL_CURRENT | unix.MCL_FUTURE | unix.MCL_ONFAULT)
	if err == unix.EINVAL {
		err = unix.Mlockall(unix.MCL_CURRENT | unix.MCL_FUTURE)
	}
	if err != nil {
		log.Warn("cannot lock memory (needs CAP_IPC_LOCK or a RLIMIT_MEMLOCK that fits)", "err", err)
		return false
	}
	log.Info("memory locked")
	return true
}

// settle gives the heap pages a full look used and no longer needs back
// to the system (debug.FreeOSMemory) and, in a locked daemon, drops the
// pages of the binary the look faulted in.
//
// The Go runtime returns free heap memory by itself, but only down to
// about its heap goal, and a full look of a few thousand processes sets
// that goal for the minute until the next one: without this, the
// daemon's RSS between looks is its busiest look's. A locked heap is no
// obstacle: madvise(MADV_DONTNEED) fails on a locked mapping
// (madvise_dontneed_free_valid_vma, mm/madvise.c), and the runtime then
// returns memory by mapping fresh pages over it (sysUnusedOS,
// runtime/mem_linux.go), which MCL_FUTURE|MCL_ONFAULT locks again as they
// are touched. The price is one forced collection per full look, a few
// milliseconds of CPU (docs/benchmarks.md).
//
// A full look runs code and reads tables the light looks between never
// do (doctor, the rules over sockets, the history; and the garbage
// collector, scanning every goroutine's stack, reads the function tables
// of each frame: .gopclntab, 3.5 MiB of it mapped after one look), and each
// of its page faults mapped the 64 KiB of the binary around it
// (fault_around_bytes): locked, that was 8 MiB more RSS for the whole
// interval, about half of the daemon's. So after every full look the
// binary's pages are dropped as start-up's are (dropText); the next look
// faults back what it runs, from the page cache, a few hundred faults.
// Text cannot be dropped while locked, so its mappings, and only those,
// are unlocked for the madvise and locked again at once; when that fails
// the daemon keeps what it has.
//
// A page dropped is read again from the page cache, or from disk if the
// kernel evicted it meanwhile, and a host short of memory evicts the page
// cache first: there the daemon keeps every page it has locked (drop is
// false, see roomy) rather than wait on the disk for its own code at the
// next look.
func settle(log *slog.Logger, locked, drop bool) {
	debug.FreeOSMemory()
	if !locked || !drop {
		return
	}
	var text []mapping
	for _, m := range binaryMappings() {
		if _, _, e := unix.Syscall(unix.SYS_MUNLOCK, uintptr(m.start), uintptr(m.end-m.start), 0); e == 0 {
			text = append(text, m)
		}
	}
	if len(text) == 0 {
		return
	}
	dropText(log, text)
	err := unix.Mlockall(unix.MCL_CURRENT | unix.MCL_FUTURE | unix.MCL_ONFAULT)
	if err == unix.EINVAL {
		err = unix.Mlockall(unix.MCL_CURRENT | unix.MCL_FUTURE)
	}
	if err != nil {
		log.Warn("cannot lock memory again after dropping a full look's pages of the binary", "err", err)
	}
}

// roomy says whether the host has memory to spare, so that the pages of
// picket's binary it drops after a full look (settle) will still be in
// the page cache when the next look runs them: at least a fifth of
// MemTotal available (twice earlyoom's default line for killing), and
// processes stalled on memory less than 5 % of the last 10 s (PSI's
// memory "some", where the kernel has it). A host whose MemAvailable is
// unknown (before 3.14, not estimated) is not taken to be roomy.
func roomy(m snapshot.Memory) bool {
	if m.MemTotalBytes == 0 || m.MemAvailableSource == snapshot.MemAvailableUnknown {
		return false
	}
	if m.MemAvailableBytes < m.MemTotalBytes/5 {
		return false
	}
	if p, ok := m.PSI["memory"]; ok && p.SomeAvg10 >= 5 {
		return false
	}
	return true
}

// mapping is one line of /proc/self/maps.
type mapping struct {
	start, end uint64
	writable   bool
	binary     bool // a mapping of picket's own executable
}

// readMaps parses /proc/self/maps; nil if it cannot be read.
func readMaps() []mapping {
	exe, err := os.Readlink("/proc/self/exe")
	if err != nil {
		return nil
	}
	b, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		return nil
	}
	var out []mapping
	for _, l := range strings.Split(string(b), "\n") {
		// start-end perms offset dev inode [path]
		f := strings.Fields(l)
		if len(f) < 5 {
			continue
		}
		lo, hi, ok := strings.Cut(f[0], "-")
		if !ok {
			continue
		}
		start, err1 := strconv.ParseUint(lo, 16, 64)
		end, err2 := strconv.ParseUint(hi, 16, 64)
		if err1 != nil || err2 != nil || end <= start {
			continue
		}
		out = append(out, mapping{start: start, end: end, writable: strings.ContainsRune(f[1], 'w'), binary: len(f) >= 6 && f[5] == exe})
	}
	return out
}

func binaryMappings() []mapping {
	var out []mapping
	for _, m := range readMaps() {
		if m.binary && !m.writable {
			out = append(out, m)
		}
	}
	return out
}

// dropText takes the binary's read-only pages (code, constant data) out
// of picket's page tables. Start-up ran every package's initialiser and
// the configuration's parsers, which the watch loop never runs again, and
// each of those faults mapped 64 KiB of the file around it
// (fault_around_bytes): locked, that was most of the daemon's RSS.
// MADV_DONTNEED on a private, never-written file mapping only unmaps:
// what the loop does run faults back in, from the page cache, and is
// locked from then on (MCL_ONFAULT). Writable mappings (.data, .bss, the
// heap) are never touched.
func dropText(log *slog.Logger, ms []mapping) {
	dropped := uint64(0)
	for _, m := range ms {
		if !m.binary || m.writable {
			continue
		}
		if _, _, e := unix.Syscall(unix.SYS_MADVISE, uintptr(m.start), uintptr(m.end-m.start), unix.MADV_DONTNEED); e == 0 {
			dropped += m.end - m.start
		}
	}
	log.Debug("pages of the binary dropped", "mapped_bytes", dropped)
}
