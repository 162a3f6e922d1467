package snapshot

import "time"

// Forecast is when one limit will be reached at its current trend, as
// picket run fitted it over its recent looks (internal/forecast;
// docs/forecast.md says how, and when it says nothing). A snapshot lists
// only the limits that have a trend: a limit absent here is flat, falling,
// noisy, too new to tell or too far off.
type Forecast struct {
	// Limit names the limit in the kernel's words: pid_max, threads-max,
	// file-max, tcp_max_orphans, tcp_mem, nf_conntrack_max, beancounter,
	// pids.max, memory.max, RLIMIT_NOFILE, RLIMIT_NPROC.
	Limit string `json:"limit"`
	// Which one, for the limits there are several of: the cgroup's path,
	// the process (pid, comm, user), the user, the beancounter's
	// container and resource. Names are chosen by others: escape them.
	Cgroup   string `json:"cgroup,omitempty"`
	PID      int    `json:"pid,omitempty"`
	Comm     string `json:"comm,omitempty"`
	User     string `json:"user,omitempty"`
	UID      string `json:"uid,omitempty"`
	Resource string `json:"resource,omitempty"`
	// At is the look the fit was made at (a light look between two full
	// ones carries the last full look's forecasts): Used is the fitted
	// level then, and ETASeconds counts from it.
	At time.Time `json:"at"`
	// Used is the fitted level at At, Max the limit in force.
	Used float64 `json:"used"`
	Max  float64 `json:"max"`
	// ETASeconds is the time from At until the fitted line reaches Max:
	// the line is Max − RatePerSecond × (At + ETASeconds − t). Used is
	// rounded for reading; the line is what the dashboard draws.
	ETASeconds    float64 `json:"eta_seconds"`
	RatePerSecond float64 `json:"rate_per_second"`
	// WindowSeconds is the span of looks the rate was fitted on, Samples
	// how many there were, Quality the fit's R² (0..1).
	WindowSeconds float64 `json:"window_seconds"`
	Samples       int     `json:"samples"`
	Quality       float64 `json:"quality"`
	// Reset: the series fell sharply (a restart) and only what came after
	// was fitted.
	Reset bool `json:"reset,omitempty"`
	// Series is the history series (/api/v1/history) of what is used,
	// the one the fit read: the dashboard draws the projection on it.
	// Empty where picket keeps no history of it.
	Series string `json:"series,omitempty"`
}
