package act

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// What picket keeps for itself must not reach the programs an exec action
// runs. The daemon sets oom_score_adj −1000 (the OOM killer never picks
// it), raises its RLIMIT_NOFILE to the hard limit, and may hold ambient or
// inheritable capabilities (a unit's AmbientCapabilities=): a child
// inheriting them would be a script the OOM killer can never stop, with
// picket's file budget and privileges. Go's os/exec runs nothing between
// fork and exec, so the child starts as picket's own binary under the name
// shimName; execShim, run from init before anything else, resets those
// three and executes argv. No shell is involved at any step.
const shimName = "picket-exec-shim"

// childNofile is the soft RLIMIT_NOFILE a child gets: the kernel's and
// systemd's default (INR_OPEN_CUR in include/uapi/linux/fs.h), since
// select(2) cannot handle descriptors past FD_SETSIZE.
const childNofile = 1024

func init() {
	if len(os.Args) >= 2 && os.Args[0] == shimName {
		execShim(os.Args[1:])
	}
}

// execShim resets what picket holds and executes argv in place of itself;
// it only returns by exiting (126, as a shell does when it cannot execute
// a file), after saying why on stderr, which the action captures.
func execShim(argv []string) {
	// Capabilities belong to a thread; execve computes the new program's
	// from the calling thread's, so both happen on this one.
	runtime.LockOSThread()
	if err := dropPrivileges(); err != nil {
		fmt.Fprintf(os.Stderr, "picket: %s: %v\n", argv[0], err)
		os.Exit(126)
	}
	err := unix.Exec(argv[0], argv, os.Environ())
	fmt.Fprintf(os.Stderr, "picket: execute %s: %v\n", argv[0], err)
	os.Exit(126)
}

// dropPrivileges is the child's side: oom_score_adj 0 (raising it needs no
// privilege), the soft RLIMIT_NOFILE back to childNofile, no ambient or
// inheritable capabilities (a root child still gets root's from execve, as
// from any root process; a non-root picket's extra ones stop here).
func dropPrivileges() error {
	if err := os.WriteFile("/proc/self/oom_score_adj", []byte("0"), 0); err != nil {
		cur, _ := os.ReadFile("/proc/self/oom_score_adj")
		// A host that does not let it be written (a read-only /proc) and
		// already has it at 0 or above is fine.
		if n, perr := strconv.Atoi(strings.TrimSpace(string(cur))); perr != nil || n < 0 {
			return fmt.Errorf("reset oom_score_adj: %w", err)
		}
	}
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err == nil && lim.Cur > childNofile {
		lim.Cur = childNofile
		if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
			return fmt.Errorf("reset RLIMIT_NOFILE: %w", err)
		}
	}
	if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0); err != nil && err != unix.EINVAL {
		return fmt.Errorf("clear ambient capabilities: %w", err) // EINVAL: a kernel before 4.3 has none
	}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return fmt.Errorf("read capabilities: %w", err)
	}
	if data[0].Inheritable != 0 || data[1].Inheritable != 0 {
		data[0].Inheritable, data[1].Inheritable = 0, 0
		if err := unix.Capset(&hdr, &data[0]); err != nil {
			return fmt.Errorf("clear inheritable capabilities: %w", err)
		}
	}
	return nil
}
