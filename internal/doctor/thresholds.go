package doctor

import (
	"errors"
	"fmt"
	"time"
)

// Thresholds are every number a check compares against that the kernel does
// not itself provide. docs/checks.md says where each default comes from;
// `picket doctor` sets each from a flag.
type Thresholds struct {
	// LimitWarnPercent and LimitCritPercent grade usage of a plain kernel
	// limit: fs.file-max, kernel.pid_max, kernel.threads-max, a user's
	// RLIMIT_NPROC, a process's RLIMIT_NOFILE, nf_conntrack_max.
	LimitWarnPercent float64
	LimitCritPercent float64

	// BeancounterWarnPercent: a beancounter row held at this share of its
	// barrier is a warning (a failcnt above 0 is always critical).
	BeancounterWarnPercent float64

	// StormMinCount and StormMinPercent: a user × command group is a storm
	// when it has at least this many processes and this share of all
	// processes (the imapd storm's PIKT thresholds were 20–90 per group).
	StormMinCount   int
	StormMinPercent float64

	// HolderMinSockets and HolderMinPercent: one process holding at least
	// this many non-TCP sockets and this share of all of them is outsized.
	HolderMinSockets int
	HolderMinPercent float64

	// PSI memory avg10 percentages (Documentation/accounting/psi.rst):
	// "some" is time at least one task stalled on memory, "full" time all
	// non-idle tasks did at once.
	PSISomeWarn float64
	PSISomeCrit float64
	PSIFullWarn float64
	PSIFullCrit float64

	// SwapWarnPages and SwapCritPages are pages per second swapped in and
	// out at once (both directions: thrashing, not mere reclaim).
	SwapWarnPages float64
	SwapCritPages float64
	// MajfaultWarn and MajfaultCrit are major faults per second; used only
	// when PSI is absent (cold page-cache reads fault too, and PSI tells
	// whether they stalled anyone).
	MajfaultWarn float64
	MajfaultCrit float64

	// OrphanPeakWindow is how far back History is asked for the orphan
	// peak that recommended_tcp_max_orphans is sized from.
	OrphanPeakWindow time.Duration

	// ForecastWarn and ForecastCrit: a limit that its trend reaches
	// within this time is a warning, within the other critical (the
	// exhaustion-forecast check; docs/forecast.md).
	ForecastWarn time.Duration
	ForecastCrit time.Duration

	// Top is how many rows evidence tables keep.
	Top int
}

// DefaultThresholds returns the defaults documented in docs/checks.md.
func DefaultThresholds() Thresholds {
	return Thresholds{
		LimitWarnPercent:       80,
		LimitCritPercent:       95,
		BeancounterWarnPercent: 90,
		StormMinCount:          50,
		StormMinPercent:        10,
		HolderMinSockets:       1000,
		HolderMinPercent:       50,
		PSISomeWarn:            10,
		PSISomeCrit:            50,
		PSIFullWarn:            5,
		PSIFullCrit:            20,
		SwapWarnPages:          100,
		SwapCritPages:          1000,
		MajfaultWarn:           1000,
		MajfaultCrit:           5000,
		OrphanPeakWindow:       7 * 24 * time.Hour,
		ForecastWarn:           24 * time.Hour,
		ForecastCrit:           2 * time.Hour,
		Top:                    10,
	}
}

// Validate reports thresholds that cannot mean anything: percentages
// outside 0–100, a warning level above its critical one, negative counts.
func (t Thresholds) Validate() error {
	var errs []error
	pct := func(name string, v float64) {
		if v < 0 || v > 100 {
			errs = append(errs, fmt.Errorf("%s = %g: want a percentage from 0 to 100", name, v))
		}
	}
	order := func(warn, crit string, w, c float64) {
		if w > c {
			errs = append(errs, fmt.Errorf("%s (%g) is above %s (%g)", warn, w, crit, c))
		}
	}
	nonneg := func(name string, v float64) {
		if v < 0 {
			errs = append(errs, fmt.Errorf("%s = %g: want 0 or more", name, v))
		}
	}
	pct("limit warn percent", t.LimitWarnPercent)
	pct("limit critical percent", t.LimitCritPercent)
	order("limit warn percent", "limit critical percent", t.LimitWarnPercent, t.LimitCritPercent)
	pct("beancounter percent", t.BeancounterWarnPercent)
	pct("storm percent", t.StormMinPercent)
	pct("holder percent", t.HolderMinPercent)
	for _, p := range []struct {
		n string
		v float64
	}{{"psi some warn", t.PSISomeWarn}, {"psi some critical", t.PSISomeCrit}, {"psi full warn", t.PSIFullWarn}, {"psi full critical", t.PSIFullCrit}} {
		pct(p.n, p.v)
	}
	order("psi some warn", "psi some critical", t.PSISomeWarn, t.PSISomeCrit)
	order("psi full warn", "psi full critical", t.PSIFullWarn, t.PSIFullCrit)
	nonneg("storm minimum", float64(t.StormMinCount))
	nonneg("holder minimum", float64(t.HolderMinSockets))
	nonneg("swap warn", t.SwapWarnPages)
	nonneg("majfault warn", t.MajfaultWarn)
	order("swap warn", "swap critical", t.SwapWarnPages, t.SwapCritPages)
	order("majfault warn", "majfault critical", t.MajfaultWarn, t.MajfaultCrit)
	nonneg("orphan peak window", float64(t.OrphanPeakWindow))
	nonneg("forecast critical", float64(t.ForecastCrit))
	order("forecast critical", "forecast warn", t.ForecastCrit.Seconds(), t.ForecastWarn.Seconds())
	if t.Top < 1 {
		errs = append(errs, fmt.Errorf("top = %d: want at least 1 row", t.Top))
	}
	return errors.Join(errs...)
}
