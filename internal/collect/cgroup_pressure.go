package collect

import (
	"fmt"

	"github.com/picket-guard/picket/internal/cgroup"
	"github.com/picket-guard/picket/internal/snapshot"
)

// pressureController reads a v2 cgroup's memory.pressure, cpu.pressure and
// io.pressure (Documentation/accounting/psi.rst): the share of time its
// tasks stalled on each, the same format as /proc/pressure. On a hybrid
// host they live in the unified mount even without its controllers.
type pressureController struct{}

func (pressureController) controller() string { return "" }

var pressureResources = []string{"memory", "cpu", "io"}

func (pressureController) read(d *cgroup.Dir, v cgroup.Version, cg *snapshot.Cgroup, full bool) error {
	if v != cgroup.V2 || !full {
		return nil
	}
	var e firstErr
	for _, res := range pressureResources {
		b, err := d.Read(res + ".pressure")
		if err != nil {
			e.add(err)
			continue
		}
		p, err := cgroup.ParsePSI(b)
		if err != nil {
			e.add(fmt.Errorf("%s/%s.pressure: %w", d.Rel, res, err))
			continue
		}
		if cg.Pressure == nil {
			cg.Pressure = map[string]snapshot.PSI{}
		}
		cg.Pressure[res] = snapshot.PSI{
			SomeAvg10: p.Some.Avg10, SomeAvg60: p.Some.Avg60, SomeAvg300: p.Some.Avg300, SomeTotal: p.Some.Total,
			FullAvg10: p.Full.Avg10, FullAvg60: p.Full.Avg60, FullAvg300: p.Full.Avg300, FullTotal: p.Full.Total,
			HasFull: p.HasFull,
		}
	}
	return e.err
}
