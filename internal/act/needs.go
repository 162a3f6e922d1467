package act

import (
	"fmt"
	"os"

	"github.com/picket-guard/picket/internal/hostcap"
)

// Fitness is whether an action kind can work on this host: refused (its
// feature or capability is missing: the kind is refused at validate, said
// once at start, and every action of it refused at once instead of failing
// mid-storm), or working with limits (a fallback, or a narrower reach).
type Fitness struct {
	Kind    string
	Refused error
	Limits  []string
}

// Fit says whether kind can work on the host h describes. A kind with no
// needs (exec) always fits.
func Fit(kind string, h *hostcap.Set) Fitness {
	f := Fitness{Kind: kind}
	k := kindNamed(kinds(), kind)
	if k == nil || k.needs == nil || h == nil {
		return f
	}
	f.Limits, f.Refused = k.needs(h)
	return f
}

// fitness is Fit for this Runner's host.
func (r *Runner) fitness(k *kind) Fitness {
	f := Fitness{Kind: k.name}
	if k.needs != nil {
		f.Limits, f.Refused = k.needs(r.host)
	}
	return f
}

// Host is the probe this Runner acts by.
func (r *Runner) Host() *hostcap.Set { return r.host }

func missingFeature(kind string, h *hostcap.Set, n hostcap.Name) error {
	return fmt.Errorf("%s cannot work on this host: no %s (%s)", kind, n, h.Feature(n).Detail)
}

func missingCap(kind string, c hostcap.Cap) error {
	return fmt.Errorf("%s cannot work on this host: picket does not hold %s", kind, c)
}

func ownUserOnly(h *hostcap.Set, c hostcap.Cap, what string) string {
	return fmt.Sprintf("without %s %s only processes of picket's own user (uid %d); others fail with EPERM", c, what, os.Geteuid())
}

// killNeeds: a signal to another user's process needs CAP_KILL; without
// pidfds the identity check is repeated right before kill(2) (safety rule
// 4 says what window remains).
func killNeeds(h *hostcap.Set) ([]string, error) {
	var limits []string
	if !h.HasCap(hostcap.CapKill) {
		limits = append(limits, ownUserOnly(h, hostcap.CapKill, "signals"))
	}
	if !h.Has(hostcap.Pidfd) {
		limits = append(limits, "without pidfd: "+hostcap.Fallback(hostcap.Pidfd))
	}
	return limits, nil
}

// freezeNeeds: the cgroup freezers need their hierarchy; SIGSTOP, the
// fallback, needs CAP_KILL for other users' processes.
func freezeNeeds(h *hostcap.Set) ([]string, error) {
	var limits []string
	if !h.HasCap(hostcap.CapKill) {
		limits = append(limits, ownUserOnly(h, hostcap.CapKill, "stops"))
	}
	if !hasFreezer(h) {
		limits = append(limits, "no cgroup freezer (neither cgroup2 nor a v1 freezer mounted): trees are stopped with SIGSTOP")
	}
	return limits, nil
}

// freezeCgroupNeeds: a cgroup freezer, v2's cgroup.freeze or v1's
// freezer hierarchy; without either there is nothing to freeze with.
func freezeCgroupNeeds(h *hostcap.Set) ([]string, error) {
	if !hasFreezer(h) {
		return nil, fmt.Errorf("freeze_cgroup cannot work on this host: no cgroup freezer (neither cgroup2 nor a v1 freezer hierarchy is mounted: %s)",
			h.Feature(hostcap.CgroupV2).Detail)
	}
	return nil, nil
}

func hasFreezer(h *hostcap.Set) bool {
	freezer := h.Has(hostcap.CgroupV2)
	for _, c := range h.Cgroups.V1 {
		freezer = freezer || c == "freezer"
	}
	return freezer
}

// throttleNeeds: nf_tables over netlink, and CAP_NET_ADMIN to change it.
// There is no iptables fallback: an iptables rule would be a second
// ruleset picket must keep apart from the administrator's, and every
// kernel since 3.13 has nf_tables.
func throttleNeeds(h *hostcap.Set) ([]string, error) {
	if !h.HasCap(hostcap.CapNetAdmin) {
		return nil, missingCap("throttle", hostcap.CapNetAdmin)
	}
	if !h.Has(hostcap.Nftables) {
		return nil, missingFeature("throttle", h, hostcap.Nftables)
	}
	return nil, nil
}

// sysctlNeeds: a writable /proc/sys.
func sysctlNeeds(h *hostcap.Set) ([]string, error) {
	if !h.Has(hostcap.ProcSysWritable) {
		return nil, missingFeature("sysctl", h, hostcap.ProcSysWritable)
	}
	if !h.HasCap(hostcap.CapSysAdmin) {
		return []string{"without CAP_SYS_ADMIN only the network namespace's own keys (net.*) can be written"}, nil
	}
	return nil, nil
}

// archiveNeeds: reading other users' spools needs CAP_DAC_READ_SEARCH;
// without openat2 the walk by components keeps rule 8.
func archiveNeeds(h *hostcap.Set) ([]string, error) {
	var limits []string
	if !h.HasCap(hostcap.CapDacReadSearch) && !h.HasCap(hostcap.CapDacOverride) {
		limits = append(limits, "without CAP_DAC_READ_SEARCH only files picket's user may read can be archived")
	}
	if !h.Has(hostcap.Openat2) {
		limits = append(limits, "without openat2: "+hostcap.Fallback(hostcap.Openat2))
	}
	return limits, nil
}
