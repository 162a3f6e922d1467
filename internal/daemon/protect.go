package daemon

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"
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

// strictModes refuses, when running as root, a configuration file that
// someone other than root could have written (sshd's StrictModes): rules
// can kill processes and run programs as root.
func strictModes(files []string) error {
	if os.Geteuid() != 0 {
		return nil
	}
	for _, f := range files {
		for _, p := range []string{f, filepath.Dir(f)} {
			var st unix.Stat_t
			if err := unix.Stat(p, &st); err != nil {
				return fmt.Errorf("%s: %w", p, err)
			}
			if st.Uid != 0 {
				return fmt.Errorf("%s is owned by uid %d, not root: refusing a configuration others could change", p, st.Uid)
			}
			if st.Mode&0o022 != 0 {
				return fmt.Errorf("%s is writable by group or others (mode %#o): refusing a configuration others could change", p, st.Mode&0o7777)
			}
		}
	}
	return nil
}
