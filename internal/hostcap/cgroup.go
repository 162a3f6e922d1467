package hostcap

import (
	"bufio"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Cgroups is the cgroup layout the probe found in ROOT/proc/self/mountinfo.
// It is a minimal discovery, enough to say what freeze and kill scope
// cgroup can use; internal/cgroup owns the full one.
type Cgroups struct {
	// Layout is "unified" (v2 only), "legacy" (v1 only), "hybrid" (v1
	// controllers beside a v2 mount) or "none".
	Layout string `json:"layout"`
	// V1 lists the v1 controllers mounted (name=systemd shows as
	// "name=systemd").
	V1 []string `json:"v1,omitempty"`
	// V2Mount is where the unified hierarchy is mounted, V2 the
	// controllers its root offers (cgroup.controllers).
	V2Mount string   `json:"v2_mount,omitempty"`
	V2      []string `json:"v2,omitempty"`
}

// probeCgroups reads mountinfo (fs/proc_namespace.c, show_mountinfo):
// "ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS [OPTIONAL...] - FSTYPE SOURCE
// SUPEROPTS".
func probeCgroups(root string) Cgroups {
	cg := Cgroups{Layout: "none"}
	f, err := os.Open(filepath.Join(root, "proc/self/mountinfo"))
	if err != nil {
		return cg
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		sep := slices.Index(fields, "-")
		if sep < 5 || len(fields) < sep+4 {
			continue
		}
		mnt, fstype, super := unescapeMount(fields[4]), fields[sep+1], fields[sep+3]
		switch fstype {
		case "cgroup2":
			if cg.V2Mount == "" {
				cg.V2Mount = mnt
				if b, err := os.ReadFile(filepath.Join(root, mnt, "cgroup.controllers")); err == nil {
					cg.V2 = strings.Fields(string(b))
				}
			}
		case "cgroup":
			for _, o := range strings.Split(super, ",") {
				switch o {
				case "rw", "ro", "clone_children", "noprefix", "xattr", "cpuset_v2_mode", "favordynmods":
					continue
				}
				if strings.HasPrefix(o, "release_agent=") {
					continue
				}
				if !slices.Contains(cg.V1, o) {
					cg.V1 = append(cg.V1, o)
				}
			}
		}
	}
	slices.Sort(cg.V1)
	switch {
	case cg.V2Mount != "" && len(cg.V1) > 0:
		cg.Layout = "hybrid"
	case cg.V2Mount != "":
		cg.Layout = "unified"
	case len(cg.V1) > 0:
		cg.Layout = "legacy"
	}
	return cg
}

// unescapeMount undoes mountinfo's octal escapes of space, tab, newline
// and backslash (mangle() in fs/proc_namespace.c).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	r := strings.NewReplacer(`\040`, " ", `\011`, "\t", `\012`, "\n", `\134`, `\`)
	return r.Replace(s)
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
