package rules

import (
	"math"

	"github.com/picket-guard/picket/internal/snapshot"
)

// NoETA is eta_seconds for a row whose limit has no trend (flat, falling,
// noisy, too new or too far off): 68 years, never. Not unknown (nil): a
// rule `eta_seconds < 3600` that fired must resolve when the trend goes,
// and a row with an unknown value is neither matched nor resolved.
const NoETA = math.MaxInt32

// etas indexes a snapshot's forecasts by what they are a forecast of.
type etas struct {
	host   int
	limit  string
	nofile map[int]int
	cgroup map[string]int
	bc     map[[2]string]int
}

func newETAs(s *snapshot.Snapshot) *etas {
	e := &etas{host: NoETA, nofile: map[int]int{}, cgroup: map[string]int{}, bc: map[[2]string]int{}}
	for _, f := range s.Forecasts {
		sec := int(min(f.ETASeconds, NoETA))
		sooner := func(m map[string]int, k string) {
			if v, ok := m[k]; !ok || sec < v {
				m[k] = sec
			}
		}
		switch {
		case f.Cgroup != "":
			sooner(e.cgroup, f.Cgroup)
		case f.Limit == "RLIMIT_NOFILE":
			if v, ok := e.nofile[f.PID]; !ok || sec < v {
				e.nofile[f.PID] = sec
			}
		case f.Limit == "beancounter":
			e.bc[[2]string{f.UID, f.Resource}] = sec
		case f.PID == 0 && f.User == "" && f.UID == "":
			if sec < e.host {
				e.host, e.limit = sec, f.Limit
			}
		}
	}
	return e
}

func lookupETA[K comparable](m map[K]int, k K) int {
	if v, ok := m[k]; ok {
		return v
	}
	return NoETA
}
