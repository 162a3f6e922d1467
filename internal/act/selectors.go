package act

import (
	"fmt"
	"path"
	"regexp"
	"strings"

	"github.com/picket-guard/picket/internal/cgroup"
)

// Selectors pick processes, for every action that acts on processes (kill
// and freeze): every one given must match. comm is cut at 15 bytes by the
// kernel and every Node.js program is "node": cmdline, exe, unit and cgroup
// tell them apart.
type Selectors struct {
	User      string // name or uid (effective uid, as ps shows)
	Comm      string // exact, as /proc/PID/comm
	CommRegex string // Go regexp, unanchored; no placeholders
	Cmdline   string // Go regexp over argv joined by spaces; no placeholders
	Exe       string // exact target of /proc/PID/exe
	// Cgroup is a cgroup path: that cgroup and the ones below it.
	Cgroup string
	// CgroupGlob is a glob of one (path.Match: /system.slice/php*.service),
	// matched against the cgroup and each cgroup above it. It cannot hold a
	// placeholder: a cgroup name is untrusted and would become glob syntax
	// ("*"); cgroup takes a rendered path literally.
	CgroupGlob string
	// Unit is a systemd unit: the processes whose cgroup path has it as a
	// component (a slice holds the units in it).
	Unit      string
	PID, PPID string
}

func (s Selectors) empty() bool {
	return s.User == "" && s.Comm == "" && s.CommRegex == "" && s.Cmdline == "" && s.Exe == "" &&
		s.Cgroup == "" && s.CgroupGlob == "" && s.Unit == "" && s.PID == "" && s.PPID == ""
}

// validate checks the selectors of a kind's spec; placeholders are
// accepted where the value stays a literal (user, comm, exe, cgroup, unit,
// pid), refused where it would become syntax (the regexps).
func (s Selectors) validate(kind string) []error {
	var errs []error
	if s.empty() {
		errs = append(errs, fmt.Errorf("%s: needs a selector (user, comm, comm_regex, cmdline, exe, cgroup, cgroup_glob, unit, pid or ppid); it would match every process", kind))
	}
	for _, f := range []struct{ name, v string }{{"comm_regex", s.CommRegex}, {"cmdline", s.Cmdline}} {
		if f.v == "" {
			continue
		}
		if hasPlaceholder(f.v) {
			errs = append(errs, fmt.Errorf("%s: %s cannot hold a placeholder: process and user names are untrusted and would become regular-expression syntax (use comm, user or pid)", kind, f.name))
		} else if _, err := regexp.Compile(f.v); err != nil {
			errs = append(errs, fmt.Errorf("%s: %s: %w", kind, f.name, err))
		}
	}
	if s.Exe != "" && !hasPlaceholder(s.Exe) && !path.IsAbs(s.Exe) {
		errs = append(errs, fmt.Errorf("%s: exe %q is not an absolute path", kind, s.Exe))
	}
	if s.Cgroup != "" && !hasPlaceholder(s.Cgroup) && !strings.HasPrefix(s.Cgroup, "/") {
		errs = append(errs, fmt.Errorf("%s: cgroup %q must start with /", kind, s.Cgroup))
	}
	if g := s.CgroupGlob; g != "" {
		if hasPlaceholder(g) {
			errs = append(errs, fmt.Errorf("%s: cgroup_glob cannot hold a placeholder: cgroup names are untrusted and would become glob syntax (use cgroup)", kind))
		} else if _, err := path.Match(g, "/"); err != nil || !strings.HasPrefix(g, "/") {
			errs = append(errs, fmt.Errorf("%s: cgroup_glob %q: want an absolute path.Match pattern", kind, g))
		}
	}
	if s.Unit != "" && !hasPlaceholder(s.Unit) && !cgroup.IsUnitName(s.Unit) {
		errs = append(errs, fmt.Errorf("%s: unit %q is not a systemd unit name (NAME.service, .scope, .slice…)", kind, s.Unit))
	}
	for _, f := range []struct{ name, v string }{{"pid", s.PID}, {"ppid", s.PPID}} {
		if f.v != "" && !hasPlaceholder(f.v) {
			if _, err := parsePIDs(f.v); err != nil {
				errs = append(errs, fmt.Errorf("%s: %s: %w", kind, f.name, err))
			}
		}
	}
	return errs
}

// cgroupMatch: cg is want or below it; with a glob, cg or a cgroup above it
// matches the glob.
func cgroupMatch(want string, glob bool, cg string) bool {
	if !glob {
		return cg == want || strings.HasPrefix(cg, want+"/")
	}
	for p := cg; p != "" && p != "/"; p = path.Dir(p) {
		if ok, _ := path.Match(want, p); ok {
			return true
		}
	}
	return false
}

// inUnit: a component of the cgroup path is the unit (its cgroup, or a
// cgroup below it: a slice's units, a service's delegated subtree).
func inUnit(unit, cg string) bool {
	for _, c := range strings.Split(cg, "/") {
		if c == unit {
			return true
		}
	}
	return false
}
