package daemon

import (
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/picket-guard/picket/internal/act"
	"github.com/picket-guard/picket/internal/hostcap"
	"github.com/picket-guard/picket/internal/rules"
	"github.com/picket-guard/picket/internal/server"
)

// HostReport is a configuration held against the host it runs on: the
// action kinds it uses that the host cannot take, and what works only
// narrower (an action's limits, a table the privileges shrink). `picket
// validate` prints it; `picket run` logs it once at start and after each
// reload, and /healthz carries the refusals.
type HostReport struct {
	Refused []server.Refusal
	Limited []string
}

// HostCheck holds cfg against h.
func HostCheck(cfg *rules.Config, h *hostcap.Set) HostReport {
	var rep HostReport
	uses := cfg.ActionUses()
	kinds := make([]string, 0, len(uses))
	for k := range uses {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	for _, k := range kinds {
		f := act.Fit(k, h)
		by := plural(uses[k])
		if f.Refused != nil {
			rep.Refused = append(rep.Refused, server.Refusal{Kind: k, Rules: uses[k], Reason: f.Refused.Error()})
			continue
		}
		for _, l := range f.Limits {
			rep.Limited = append(rep.Limited, fmt.Sprintf("%s (%s): %s", k, by, l))
		}
	}
	if !h.HasCap(hostcap.CapSysPtrace) {
		var names []string
		for _, r := range cfg.Rules {
			if r.Active && r.NeedsSockets() {
				names = append(names, r.Name)
			}
		}
		if len(names) > 0 {
			rep.Limited = append(rep.Limited, fmt.Sprintf("socket tables (%s): without CAP_SYS_PTRACE only the sockets of "+
				"picket's own user's processes (uid %d) are attributed", plural(names), os.Geteuid()))
		}
	}
	return rep
}

func plural(rs []string) string {
	if len(rs) == 1 {
		return "rule " + rs[0]
	}
	return "rules " + strings.Join(rs, ", ")
}

// Lines is the report as `picket validate` prints it, one line each.
func (rep HostReport) Lines() []string {
	var out []string
	for _, r := range rep.Refused {
		out = append(out, fmt.Sprintf("refused: %s (%s)", r.Reason, plural(r.Rules)))
	}
	for _, l := range rep.Limited {
		out = append(out, "limited: "+l)
	}
	return out
}

// hostFeatures is the probe as /healthz and /metrics show it.
func hostFeatures(h *hostcap.Set) *server.HostFeatures {
	return &server.HostFeatures{Kernel: h.Kernel, Container: h.Container, Features: h.FeatureMap(), Capabilities: h.CapMap()}
}

// logHost says, once, what this host lacks and what picket does instead,
// then what of cfg it refuses or narrows.
func (d *Daemon) logHost(rep HostReport) {
	h := d.hostcap
	d.log.Info("host probed", "kernel", h.Kernel, "container", h.Container, "cgroups", h.Cgroups.Layout, "summary", h.Summary())
	for _, n := range h.Notices() {
		d.log.Warn("host: "+n, "once", true)
	}
	for _, r := range rep.Refused {
		d.log.Error("action kind refused on this host: its actions will be refused until picket runs where it can take them",
			"kind", r.Kind, "rules", strings.Join(r.Rules, ","), "reason", r.Reason)
	}
	for _, l := range rep.Limited {
		d.log.Warn("limited on this host: " + l)
	}
}
