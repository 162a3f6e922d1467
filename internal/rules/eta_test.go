package rules

import (
	"testing"
	"time"

	"github.com/picket-guard/picket/internal/alarm"
	"github.com/picket-guard/picket/internal/snapshot"
)

// A rule on eta_seconds fires on a forecast and resolves when the trend
// goes: a row without a trend reads NoETA, not unknown.
func TestETASeconds(t *testing.T) {
	cfg, err := loadString(t, `
rules:
  - name: fds-soon
    table: socket_holders
    if: eta_seconds < 3600
    then: [{log: {stderr: true}}]
  - name: host-soon
    table: kernel
    if: eta_seconds < 7200 && eta_limit == "pid_max"
    then: [{log: {stderr: true}}]
  - name: cgroup-soon
    table: cgroups
    if: eta_seconds < 600
    then: [{log: {stderr: true}}]
`)
	if err != nil {
		t.Fatal(err)
	}
	u := func(v uint64) *uint64 { return &v }
	look := func(i int, fs ...snapshot.Forecast) *Input {
		s := &snapshot.Snapshot{Time: time.Unix(1_800_000_000+int64(i), 0), Forecasts: fs}
		s.Sockets.Processes = []snapshot.Holder{{PID: 42, Comm: "leaky", Total: 900, FDs: 910, FDLimit: 1024}, {PID: 7, Comm: "steady", Total: 1500, FDs: 1510, FDLimit: 4096}}
		s.Cgroups = []snapshot.Cgroup{{Path: "/"}, {Path: "/system.slice/a.service", PidsCurrent: u(90), PidsMax: u(100)}}
		return &Input{Snapshot: s}
	}
	e := NewEngine(cfg, cfg.Host("h"), EngineOptions{IgnoreHysteresis: true})
	fired := map[string]alarm.Status{}
	run := func(in *Input) {
		evs, err := e.Evaluate(in, e.Rules())
		if err != nil {
			t.Fatal(err)
		}
		for _, x := range evs {
			fired[x.Alarm.Rule+"/"+x.Alarm.Key] = x.Alarm.Status
		}
	}
	run(look(0,
		snapshot.Forecast{Limit: "RLIMIT_NOFILE", PID: 42, ETASeconds: 1200},
		snapshot.Forecast{Limit: "pid_max", ETASeconds: 5000},
		snapshot.Forecast{Limit: "pids.max", Cgroup: "/system.slice/a.service", ETASeconds: 300}))
	for _, k := range []string{"fds-soon/pid=42 comm=leaky", "host-soon/kernel", "cgroup-soon/path=/system.slice/a.service"} {
		if fired[k] != alarm.Firing {
			t.Errorf("%s: %v; fired %v", k, fired[k], fired)
		}
	}
	if len(fired) != 3 {
		t.Errorf("fired %v: the steady holder has no ETA", fired)
	}
	run(look(1))
	for k, st := range fired {
		if st != alarm.Resolved {
			t.Errorf("%s still %v once the trend is gone", k, st)
		}
	}
	if r := kernelRow(&snapshot.Snapshot{}); r["eta_seconds"] != NoETA || r["eta_limit"] != "" {
		t.Errorf("no forecast: %v %v", r["eta_seconds"], r["eta_limit"])
	}
}
