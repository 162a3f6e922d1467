package daemon

import (
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/picket-guard/picket/internal/secpath"
)

// protect makes picket hard to kill by the exhaustion it watches, the way
// earlyoom protects itself: out of the OOM killer's reach, its memory
// locked so a thrashing box cannot page it out, and file descriptors to
// spare when the system runs out. Each step is best effort and logged.
func protect(log *slog.Logger, oomScoreAdj int, mlock bool) (release func()) {
	if err := os.WriteFile("/proc/self/oom_score_adj", []byte(strconv.Itoa(oomScoreAdj)), 0); err != nil {
		log.Warn("cannot set oom_score_adj (needs CAP_SYS_RESOURCE to lower it)", "want", oomScoreAdj, "err", err)
	} else {
		log.Info("oom_score_adj set", "value", oomScoreAdj)
	}
	if mlock {
		// MCL_ONFAULT (Linux 4.4): lock pages as they are touched instead
		// of faulting in the whole binary and every reservation the Go
		// runtime maps up front (that was 24 MiB of RSS, most of it code
		// the daemon never runs). An older kernel refuses the flag with
		// EINVAL: it gets the whole lock.
		dropStartupText(log)
		err := unix.Mlockall(unix.MCL_CURRENT | unix.MCL_FUTURE | unix.MCL_ONFAULT)
		if err == unix.EINVAL {
			err = unix.Mlockall(unix.MCL_CURRENT | unix.MCL_FUTURE)
		}
		if err != nil {
			log.Warn("cannot lock memory (needs CAP_IPC_LOCK or a RLIMIT_MEMLOCK that fits)", "err", err)
		} else {
			log.Info("memory locked")
		}
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
	}
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

// dropStartupText takes the binary's read-only pages (code, constant data)
// out of picket's page tables before its memory is locked. Start-up ran
// every package's initialiser and the configuration's parsers, which the
// watch loop never runs again, and each of those faults mapped 64 KiB of
// the file around it (fault_around_bytes): locked, that was most of the
// daemon's RSS. MADV_DONTNEED on a private, never-written file mapping
// only unmaps: what the loop does run faults back in, from the page cache,
// and is locked from then on (MCL_ONFAULT). Writable mappings (.data,
// .bss, the heap) are never touched.
func dropStartupText(log *slog.Logger) {
	exe, err := os.Readlink("/proc/self/exe")
	if err != nil {
		return
	}
	b, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		return
	}
	dropped := uint64(0)
	for _, l := range strings.Split(string(b), "\n") {
		// start-end perms offset dev inode path
		f := strings.Fields(l)
		if len(f) < 6 || f[5] != exe || strings.ContainsRune(f[1], 'w') {
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
		if _, _, e := unix.Syscall(unix.SYS_MADVISE, uintptr(start), uintptr(end-start), unix.MADV_DONTNEED); e == 0 {
			dropped += end - start
		}
	}
	log.Debug("start-up pages of the binary dropped", "mapped_bytes", dropped)
}
