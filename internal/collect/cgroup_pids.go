package collect

import (
	"github.com/picket-guard/picket/internal/cgroup"
	"github.com/picket-guard/picket/internal/snapshot"
)

// pidsController reads the pids controller (kernel/cgroup/pids.c), the
// same files in v1 and v2: pids.current (tasks in the cgroup and below),
// pids.max (systemd's TasksMax=), pids.peak (Linux 6.1), and pids.events'
// max, the forks refused because this cgroup or one above it was at its
// pids.max. The kernel logs such a refusal once per cgroup ("fork
// rejected by pids controller in PATH"); the counter says how many.
type pidsController struct{}

func (pidsController) controller() string { return "pids" }

func (pidsController) read(d *cgroup.Dir, _ cgroup.Version, cg *snapshot.Cgroup, full bool) error {
	var e firstErr
	e.add(readUint(d, "pids.current", &cg.PidsCurrent))
	e.add(readMax(d, "pids.max", &cg.PidsMax))
	if full {
		e.add(readUint(d, "pids.peak", &cg.PidsPeak))
	}
	if b, err := d.Read("pids.events"); err == nil {
		if v, ok := cgroup.Keyed(b, "max")["max"]; ok {
			cg.PidsEventsMax = &v
		}
	} else {
		e.add(err)
	}
	return e.err
}
