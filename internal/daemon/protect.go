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

// settleLocked gives the heap pages a full look used and no longer needs
// back to the system, and drops the binary's pages of the first look
// when warmup is set. A locked page stays resident whether the heap
// still uses it or not: madvise(MADV_DONTNEED), with which the Go
// scavenger returns free memory, fails on a locked mapping
// (can_madv_lru_vma in mm/madvise.c), so without this the daemon's RSS
// is the high-water mark of its busiest look, for good. So the
// anonymous mappings (the Go heap, its metadata, goroutine stacks) are
// unlocked, the heap is collected and returned (debug.FreeOSMemory), and
// the lock is taken again, MCL_ONFAULT: what stayed is locked at once,
// what was returned is locked when it is touched again. For those few
// milliseconds (a collection of a heap of a few MiB) only anonymous
// memory is unlocked, which only swap could take; the binary's code,
// what a thrashing box evicts first, stays locked throughout except at
// warm-up, when the pages of one-time code are dropped the way start-up's
// are (dropText).
//
// Nothing is unlocked when picket could not lock itself (mlockall
// refused) or the maps cannot be read: it then keeps what it has.
func settleLocked(log *slog.Logger, warmup bool) {
	maps := readMaps()
	if maps == nil {
		return
	}
	var text []mapping
	n := 0
	for _, m := range maps {
		if m.anon && m.writable || warmup && m.binary && !m.writable {
			if _, _, e := unix.Syscall(unix.SYS_MUNLOCK, uintptr(m.start), uintptr(m.end-m.start), 0); e != 0 {
				continue
			}
			n++
			if m.binary {
				text = append(text, m)
			}
		}
	}
	if n == 0 {
		return
	}
	if warmup {
		dropText(log, text)
	}
	debug.FreeOSMemory()
	err := unix.Mlockall(unix.MCL_CURRENT | unix.MCL_FUTURE | unix.MCL_ONFAULT)
	if err == unix.EINVAL {
		err = unix.Mlockall(unix.MCL_CURRENT | unix.MCL_FUTURE)
	}
	if err != nil {
		log.Warn("cannot lock memory again after returning free heap pages", "err", err)
	}
}

// mapping is one line of /proc/self/maps.
type mapping struct {
	start, end uint64
	writable   bool
	binary     bool // a mapping of picket's own executable
	anon       bool // no file behind it: the Go heap, its metadata, stacks
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
		m := mapping{start: start, end: end, writable: strings.ContainsRune(f[1], 'w')}
		switch {
		case len(f) == 5:
			// Only private anonymous memory: the Go runtime maps
			// nothing shared, and [stack], [vdso]... carry a name.
			m.anon = strings.HasSuffix(f[1], "p")
		case f[5] == exe:
			m.binary = true
		}
		out = append(out, m)
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
