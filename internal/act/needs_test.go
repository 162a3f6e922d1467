package act

import (
	"strings"
	"testing"
	"time"

	"github.com/picket-guard/picket/internal/hostcap"
)

// TestRefusedOnThisHost: on a host without nftables (or without
// CAP_NET_ADMIN) a throttle is refused at once with the reason — nothing
// is journaled, no netlink is tried — and a dry run says it would be.
func TestRefusedOnThisHost(t *testing.T) {
	probed := hostcap.Probe(hostcap.Options{})
	for _, tc := range []struct {
		name string
		host *hostcap.Set
		spec Spec
		want string
	}{
		{"no nftables", probed.Without(hostcap.Nftables), &ThrottleSpec{Port: 80, For: time.Minute},
			"throttle cannot work on this host: no nftables (switched off)"},
		{"no CAP_NET_ADMIN", probed.WithoutCaps(hostcap.CapNetAdmin), &ThrottleSpec{Port: 80, For: time.Minute},
			"throttle cannot work on this host: picket does not hold CAP_NET_ADMIN"},
		{"read-only /proc/sys", probed.Without(hostcap.ProcSysWritable), &SysctlSpec{Key: "net.ipv4.tcp_max_orphans", Value: "70000"},
			"sysctl cannot work on this host: no proc_sys_writable (switched off)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			state := t.TempDir()
			r := newRunner(t, Options{StateDir: state, Host: tc.host, Root: fixtureRoot(t)})
			res := r.Do(t.Context(), Request{Spec: tc.spec, Rule: "ApacheThrash"})
			if res.Result != "refused: "+tc.want || res.ID != "" {
				t.Errorf("result %+v, want refused: %s", res, tc.want)
			}
			if es := journalOf(t, state); len(es) != 0 {
				t.Errorf("a refused action was journaled: %v", es)
			}
			dry := r.Do(t.Context(), Request{Spec: tc.spec, Rule: "ApacheThrash", DryRun: true})
			if !strings.HasPrefix(dry.Result, "would ") || !strings.HasSuffix(dry.Result, "(but "+tc.want+")") {
				t.Errorf("dry run: %q", dry.Result)
			}
			if f := Fit(tc.spec.Kind(), tc.host); f.Refused == nil || f.Refused.Error() != tc.want {
				t.Errorf("Fit: %+v", f)
			}
		})
	}
}

// TestFitLimits: what still works, narrower, without a capability or a
// feature, said by Fit (validate and the daemon's start print it).
func TestFitLimits(t *testing.T) {
	probed := hostcap.Probe(hostcap.Options{})
	if f := Fit("exec", probed.WithoutCaps(hostcap.Relevant()...)); f.Refused != nil || len(f.Limits) != 0 {
		t.Errorf("exec needs nothing: %+v", f)
	}
	f := Fit("kill", probed.Without(hostcap.Pidfd).WithoutCaps(hostcap.CapKill))
	if f.Refused != nil || len(f.Limits) != 2 || !strings.Contains(f.Limits[0], "without CAP_KILL signals only processes of picket's own user") ||
		!strings.Contains(f.Limits[1], "without pidfd: kill re-reads /proc/PID/stat") {
		t.Errorf("kill: %+v", f)
	}
	f = Fit("archive", probed.Without(hostcap.Openat2).WithoutCaps(hostcap.CapDacReadSearch, hostcap.CapDacOverride))
	if f.Refused != nil || len(f.Limits) != 2 {
		t.Errorf("archive: %+v", f)
	}
	if f := Fit("throttle", probed); probed.Has(hostcap.Nftables) && probed.HasCap(hostcap.CapNetAdmin) && f.Refused != nil {
		t.Errorf("throttle on this host: %+v", f)
	}
}
