package hostcap

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
)

// Cap is a capability number (include/uapi/linux/capability.h).
type Cap uint

// The capabilities picket's tables and actions depend on.
const (
	CapDacOverride   Cap = 1
	CapDacReadSearch Cap = 2
	CapKill          Cap = 5
	CapNetAdmin      Cap = 12
	CapSysPtrace     Cap = 19
	CapSysAdmin      Cap = 21
	CapSysResource   Cap = 24
	CapSyslog        Cap = 34
	CapPerfmon       Cap = 38
	CapBPF           Cap = 39
)

var capNames = map[Cap]string{
	CapDacOverride: "CAP_DAC_OVERRIDE", CapDacReadSearch: "CAP_DAC_READ_SEARCH", CapKill: "CAP_KILL",
	CapNetAdmin: "CAP_NET_ADMIN", CapSysPtrace: "CAP_SYS_PTRACE", CapSysAdmin: "CAP_SYS_ADMIN",
	CapSysResource: "CAP_SYS_RESOURCE", CapSyslog: "CAP_SYSLOG", CapPerfmon: "CAP_PERFMON", CapBPF: "CAP_BPF",
}

// capUses is what each capability gives picket, and what is lost without it.
var capUses = map[Cap]struct{ uses, without string }{
	CapKill: {"kill and freeze (SIGSTOP) signal other users' processes",
		"kill and freeze can signal only processes of picket's own user; others fail with EPERM"},
	CapNetAdmin: {"throttle adds rules to picket's nftables table",
		"throttle is refused"},
	CapSysPtrace: {"the fd walk reads every process's /proc/PID/fd (socket holders, fd counts)",
		"other users' /proc/PID/fd are unreadable: socket_holders covers only picket's own user, processes.fds is unknown (not 0) for the rest, and rules skip those rows"},
	CapDacReadSearch: {"archive reads mail spools and logs of any user; /proc/PID files of every process are readable",
		"archive can read only files picket's user may read"},
	CapDacOverride: {"archive writes into directories picket's user does not own",
		"archive writes only where picket's user may write"},
	CapSysResource: {"picket lowers its own oom_score_adj below 0 so the OOM killer spares it",
		"oom_score_adj cannot be lowered: the OOM killer may choose picket"},
	CapSysAdmin: {"most sysctl writes; BPF on kernels before 5.8",
		"sysctl writes outside the network namespace's own keys fail"},
	CapSyslog: {"/dev/kmsg is readable under kernel.dmesg_restrict=1",
		"/dev/kmsg is unreadable when kernel.dmesg_restrict=1"},
	CapBPF: {"the BPF collector loads its iterator (5.8+)",
		"the BPF collector needs CAP_SYS_ADMIN instead, or stays off"},
	CapPerfmon: {"the BPF collector reads kernel memory through its iterator (5.8+)",
		"the BPF collector needs CAP_SYS_ADMIN instead, or stays off"},
}

// Relevant lists the capabilities the report shows, in its order.
func Relevant() []Cap {
	return []Cap{CapKill, CapNetAdmin, CapSysPtrace, CapDacReadSearch, CapDacOverride, CapSysResource,
		CapSysAdmin, CapSyslog, CapBPF, CapPerfmon}
}

func (c Cap) String() string {
	if n, ok := capNames[c]; ok {
		return n
	}
	return "CAP_" + strconv.Itoa(int(c))
}

// CapUses says what c gives picket.
func CapUses(c Cap) string { return capUses[c].uses }

// CapFallback says what picket loses without c.
func CapFallback(c Cap) string { return capUses[c].without }

// Caps is a capability bitmask, bit n for capability n.
type Caps uint64

// Has reports whether c is in the set.
func (cs Caps) Has(c Cap) bool { return cs&(1<<c) != 0 }

// readCapEff reads CapEff (hex) from a status file such as
// /proc/self/status (fs/proc/array.c, render_cap_t).
func readCapEff(path string) (Caps, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		v, ok := bytes.CutPrefix(sc.Bytes(), []byte("CapEff:"))
		if !ok {
			continue
		}
		n, err := strconv.ParseUint(string(bytes.TrimSpace(v)), 16, 64)
		if err != nil {
			return 0, fmt.Errorf("%s:%d: CapEff: %w", path, line, err)
		}
		return Caps(n), nil
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("read %s: %w", path, err)
	}
	return 0, fmt.Errorf("%s: no CapEff line", path)
}
