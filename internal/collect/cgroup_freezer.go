package collect

import (
	"bytes"

	"github.com/picket-guard/picket/internal/cgroup"
	"github.com/picket-guard/picket/internal/snapshot"
)

// freezerController reads whether a cgroup is frozen: v2's cgroup.events
// "frozen 1" (the freezer is core in v2, cgroup.freeze, Linux 5.2), v1's
// freezer.state (THAWED, FREEZING, FROZEN). picket's freeze_cgroup action
// writes these; a cgroup left frozen (by an administrator, or a picket that
// died mid-freeze on a host whose journal was lost) is a service that
// answers nothing.
type freezerController struct{}

func (freezerController) controller() string { return "freezer" }

func (freezerController) read(d *cgroup.Dir, v cgroup.Version, cg *snapshot.Cgroup, _ bool) error {
	if v == cgroup.V2 {
		b, err := d.Read("cgroup.events")
		if err != nil {
			return err
		}
		if cgroup.Keyed(b, "frozen")["frozen"] == 1 {
			cg.Frozen = true
		}
		return nil
	}
	b, err := d.Read("freezer.state")
	if err != nil {
		return err
	}
	cg.FreezerState = string(bytes.TrimSpace(b))
	if cg.FreezerState == "FROZEN" {
		cg.Frozen = true
	}
	return nil
}
