package hostcap

import (
	"slices"
	"strings"

	"github.com/picket-guard/picket/internal/cgroup"
)

// Cgroups is the cgroup layout of the root, as internal/cgroup's mount
// discovery finds it (the one reader of the mount table for cgroups).
type Cgroups struct {
	// Layout is "unified" (v2 only), "legacy" (v1 only), "hybrid" (v1
	// controllers beside a v2 mount) or "none".
	Layout string `json:"layout"`
	// V1 lists the v1 controllers mounted (a named hierarchy shows as
	// "name=systemd").
	V1 []string `json:"v1,omitempty"`
	// V2Mount is where the unified hierarchy is mounted, V2 the
	// controllers its root offers (cgroup.controllers).
	V2Mount string   `json:"v2_mount,omitempty"`
	V2      []string `json:"v2,omitempty"`
}

func probeCgroups(root string) Cgroups {
	fs, err := cgroup.NewFS(root)
	if err != nil {
		return Cgroups{Layout: string(cgroup.None)}
	}
	cg := Cgroups{Layout: string(fs.Mode())}
	for _, m := range fs.Mounts {
		switch {
		case m.Version == cgroup.V2 && cg.V2Mount == "":
			cg.V2Mount, cg.V2 = m.Point, m.Controllers
		case m.Version == cgroup.V1:
			if m.Name != "" {
				cg.V1 = append(cg.V1, "name="+m.Name)
			}
			for _, c := range m.Controllers {
				if !slices.Contains(cg.V1, c) {
					cg.V1 = append(cg.V1, c)
				}
			}
		}
	}
	slices.Sort(cg.V1)
	return cg
}

func (cg Cgroups) feature(n Name) Feature {
	switch n {
	case CgroupV2:
		if cg.V2Mount == "" {
			return missing(n, "no cgroup2 mount")
		}
		d := cg.V2Mount + ", controllers: " + strings.Join(cg.V2, " ")
		if len(cg.V2) == 0 {
			d = cg.V2Mount + ", no controllers enabled"
		}
		return found(n, d)
	default:
		var ctl []string
		for _, c := range cg.V1 {
			if !strings.HasPrefix(c, "name=") {
				ctl = append(ctl, c)
			}
		}
		if len(ctl) == 0 {
			return missing(n, "no v1 controller mounted")
		}
		return found(n, strings.Join(ctl, " "))
	}
}
