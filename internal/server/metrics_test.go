package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"os/exec"
	"reflect"
	"runtime"
	"slices"
	"sort"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/picket-guard/picket/internal/collect"
	"github.com/picket-guard/picket/internal/doctor"
	"github.com/picket-guard/picket/internal/snapshot"
	"github.com/picket-guard/picket/internal/testkit"
	"github.com/picket-guard/picket/internal/testkit/snaptest"
)

// hostileComm is a process name chosen to break a naive exposition: a
// quote, a terminal escape, a newline and a fake series.
const hostileComm = "\"\x1b[31m\nfoo{bar=\"x\"}"

func scrape(t *testing.T, o Options) string {
	t.Helper()
	w := do(t, newServer(t, o).Handler(), "GET", "/metrics", nil)
	if w.Code != 200 {
		t.Fatalf("/metrics: %d %s", w.Code, w.Body)
	}
	return w.Body.String()
}

func parseMetrics(t *testing.T, text string) map[string]*dto.MetricFamily {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return fams
}

// sample finds the value of name with exactly these labels.
func sample(t *testing.T, fams map[string]*dto.MetricFamily, name string, labels ...string) (float64, bool) {
	t.Helper()
	f, ok := fams[name]
	if !ok {
		return 0, false
	}
	want := map[string]string{}
	for i := 0; i+1 < len(labels); i += 2 {
		want[labels[i]] = labels[i+1]
	}
	for _, m := range f.Metric {
		got := map[string]string{}
		for _, l := range m.Label {
			got[l.GetName()] = l.GetValue()
		}
		if !reflect.DeepEqual(got, want) {
			continue
		}
		switch {
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Untyped != nil:
			return m.Untyped.GetValue(), true
		}
	}
	return 0, false
}

// hostile adds a storm and a socket hog under a hostile name, and two
// groups whose names differ only in invalid UTF-8.
func hostile(s *snapshot.Snapshot) {
	s.Processes.Groups = append(s.Processes.Groups,
		snapshot.Group{User: "mallory", UID: 1666, Comm: hostileComm, Count: 400, Threads: 400},
		snapshot.Group{User: "mallory", UID: 1666, Comm: "dup\xff", Count: 60, Threads: 60},
		snapshot.Group{User: "mallory", UID: 1666, Comm: "dup\xfe", Count: 70, Threads: 70},
	)
	s.Sockets.Processes = append(s.Sockets.Processes,
		snapshot.Holder{PID: 6666, User: "mallory\xff", UID: 1666, Comm: hostileComm, SocketCounts: snapshot.SocketCounts{Unix: 90000}, Total: 90000, FDs: 90010},
	)
	max := uint64(10)
	s.Cgroups = append(s.Cgroups, snapshot.Cgroup{Path: "/user.slice/" + hostileComm, Unit: hostileComm, PidsCurrent: &max, PidsMax: &max})
	s.Forecasts = append(s.Forecasts,
		snapshot.Forecast{Limit: "pids.max", Cgroup: "/user.slice/" + hostileComm, Used: 8, Max: 10, ETASeconds: 600, RatePerSecond: 0.01, WindowSeconds: 900},
		snapshot.Forecast{Limit: "RLIMIT_NOFILE", PID: 6666, Comm: hostileComm, User: "mallory\xff", Used: 900, Max: 1024, ETASeconds: 1200, RatePerSecond: 0.1, WindowSeconds: 900},
		snapshot.Forecast{Limit: "pid_max", Used: 3000, Max: 32768, ETASeconds: 7800, RatePerSecond: 0.7, WindowSeconds: 2700})
}

// TestPromtool runs `promtool check metrics` (format and naming lint) on
// the real output for the fixture collected from its tree, and for the
// decoded fixture with hostile names added.
func TestPromtool(t *testing.T) {
	promtool := testkit.Need(t, "promtool", "prometheus")
	col, err := collect.New(collect.Options{Root: "../../testdata/fixtures/moscow"})
	if err != nil {
		t.Fatal(err)
	}
	collected, err := col.Collect(context.Background(), collect.Full)
	if collected == nil {
		t.Fatalf("collect the fixture tree: %v", err)
	}
	withHostile := loadedSource(t)
	hostile(withHostile.snap)
	for name, src := range map[string]*fakeSource{
		"collected": {snap: collected, health: Health{LastCollection: collected.Time, Config: "x"}},
		"hostile":   withHostile,
		"empty":     {},
	} {
		t.Run(name, func(t *testing.T) {
			if src.snap != nil && src.report == nil {
				rep := doctor.Run(doctor.Input{Cur: src.snap}, doctor.Checks())
				src.report = &rep
			}
			text := scrape(t, Options{Source: src})
			cmd := exec.Command(promtool, "check", "metrics")
			cmd.Stdin = strings.NewReader(text)
			out, err := cmd.CombinedOutput()
			if err != nil || len(bytes.TrimSpace(out)) > 0 {
				t.Errorf("promtool check metrics: %v\n%s", err, out)
			}
			if name != "empty" && !strings.Contains(text, "picket_socket_holder_sockets{") {
				t.Errorf("no holder series checked")
			}
			if name == "hostile" && !strings.Contains(text, `picket_limit_exhaustion_seconds{cgroup="",comm="",limit="pid_max",pid="",resource="",uid="",user=""} 7800`) {
				t.Errorf("no forecast series checked:\n%s", grepLines(text, "exhaustion"))
			}
			if name == "collected" && strings.Contains(text, "picket_limit_exhaustion_seconds{") {
				t.Errorf("a forecast from one look:\n%s", grepLines(text, "exhaustion"))
			}
		})
	}
}

func TestMetricsHostileLabels(t *testing.T) {
	src := loadedSource(t)
	hostile(src.snap)
	text := scrape(t, Options{Source: src})
	// The text format escapes the quote, backslash and newline; the rest
	// (the escape byte) is a legal label value.
	escaped := `"\"` + "\x1b" + `[31m\nfoo{bar=\"x\"}"`
	if !strings.Contains(text, `picket_process_group_processes{comm=`+escaped+`,user="mallory"} 400`) {
		t.Errorf("hostile comm not escaped as expected:\n%s", grep(text, "mallory"))
	}
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(line, "foo") || strings.HasPrefix(line, `bar=`) {
			t.Errorf("a process name started a line: %q", line)
		}
	}
	fams := parseMetrics(t, text)
	if v, ok := sample(t, fams, "picket_process_group_processes", "user", "mallory", "comm", hostileComm); !ok || v != 400 {
		t.Errorf("hostile group read back: %v %v", v, ok)
	}
	if v, ok := sample(t, fams, "picket_socket_holder_sockets", "pid", "6666", "comm", hostileComm, "user", "mallory\uFFFD", "type", "unix"); !ok || v != 90000 {
		t.Errorf("hostile holder read back: %v %v\n%s", v, ok, grep(text, "6666"))
	}
	// "dup\xff" and "dup\xfe" both become "dup\uFFFD": one series, summed,
	// instead of a duplicate that would fail the scrape.
	if v, ok := sample(t, fams, "picket_process_group_processes", "user", "mallory", "comm", "dup\uFFFD"); !ok || v != 130 {
		t.Errorf("colliding groups: %v %v", v, ok)
	}
}

func grep(text, s string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, s) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// wantFamilies are the picket_ metrics the moscow fixture yields: every
// one picket has (moscow has data for each).
var wantFamilies = []string{
	"picket_action_kind_refused",
	"picket_alarms_firing",
	"picket_beancounter_barrier", "picket_beancounter_failcnt_total", "picket_beancounter_held", "picket_beancounter_limit", "picket_beancounter_maxheld",
	"picket_build_info",
	"picket_capability",
	"picket_collection_duration_seconds", "picket_collection_errors",
	"picket_config_last_reload_successful",
	"picket_doctor_status",
	"picket_fd_unreadable_processes",
	"picket_feature",
	"picket_filefd_allocated", "picket_filefd_maximum", "picket_filefd_unused",
	"picket_kernel_log_readable", "picket_kernel_log_records_total", "picket_kernel_messages_total",
	"picket_netstat_tcpext_total", "picket_nf_conntrack_stat_total",
	"picket_finding_severity",
	"picket_last_collection_timestamp_seconds",
	"picket_memory_available_bytes", "picket_memory_buffers_bytes", "picket_memory_cached_bytes", "picket_memory_commit_limit_bytes",
	"picket_memory_committed_as_bytes", "picket_memory_free_bytes", "picket_memory_total_bytes",
	"picket_network_namespaces",
	"picket_nf_conntrack_entries", "picket_nf_conntrack_entries_limit",
	"picket_nr_open",
	"picket_page_size_bytes",
	"picket_pid_max",
	"picket_process_group_processes", "picket_process_group_resident_memory_bytes", "picket_process_group_threads",
	"picket_processes",
	"picket_psi_full_ratio", "picket_psi_full_seconds_total", "picket_psi_some_ratio", "picket_psi_some_seconds_total",
	"picket_socket_holder_max_fds", "picket_socket_holder_open_fds", "picket_socket_holder_sockets",
	"picket_sockets",
	"picket_spool_batches", "picket_spool_bytes", "picket_spool_dropped_total",
	"picket_actions_rate_limited_total",
	"picket_sockstat6_frag_inuse", "picket_sockstat6_raw_inuse", "picket_sockstat6_tcp_inuse", "picket_sockstat6_udp_inuse", "picket_sockstat6_udplite_inuse",
	"picket_sockstat_frag_inuse", "picket_sockstat_frag_memory_bytes", "picket_sockstat_raw_inuse", "picket_sockstat_sockets_used",
	"picket_sockstat_tcp_alloc", "picket_sockstat_tcp_inuse", "picket_sockstat_tcp_mem_pages", "picket_sockstat_tcp_orphans", "picket_sockstat_tcp_tw",
	"picket_sockstat_udp_inuse", "picket_sockstat_udp_mem_pages", "picket_sockstat_udplite_inuse",
	"picket_swap_free_bytes", "picket_swap_total_bytes",
	"picket_tcp_max_orphans", "picket_tcp_mem_pages", "picket_tcp_sockets",
	"picket_threads", "picket_threads_max",
	"picket_user_nproc_limit", "picket_user_processes", "picket_user_threads",
	"picket_vmstat_allocstall_normal_total", "picket_vmstat_oom_kill_total", "picket_vmstat_pgmajfault_total", "picket_vmstat_pgscan_direct_total",
	"picket_vmstat_pgsteal_direct_total", "picket_vmstat_pswpin_total", "picket_vmstat_pswpout_total",
}

func TestMetricsFixture(t *testing.T) {
	src := loadedSource(t)
	fams := parseMetrics(t, scrape(t, Options{Source: src, Version: "v1.2.3"}))
	var got []string
	for name := range fams {
		if strings.HasPrefix(name, "picket_") {
			got = append(got, name)
		}
	}
	sort.Strings(got)
	want := slices.Clone(wantFamilies)
	sort.Strings(want)
	if !slices.Equal(got, want) {
		t.Errorf("picket_ families:\ngot  %q\nwant %q", got, want)
	}
	for _, f := range fams {
		isCounter := f.GetType() == dto.MetricType_COUNTER
		if isCounter != strings.HasSuffix(f.GetName(), "_total") && strings.HasPrefix(f.GetName(), "picket_") {
			t.Errorf("%s is a %s", f.GetName(), f.GetType())
		}
	}
	for _, name := range []string{"go_goroutines", "process_open_fds"} {
		if _, ok := fams[name]; !ok {
			t.Errorf("no %s: the Go and process collectors are missing", name)
		}
	}
	orphans, _ := src.report.Find("tcp-orphans")
	for _, tt := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"picket_processes", nil, 19},
		{"picket_threads", nil, 49},
		{"picket_process_group_processes", []string{"user", "alice", "comm", "imapd"}, 6},
		{"picket_process_group_processes", []string{"user", "alice", "comm", "\x1b[31mred\x1b[0m"}, 1},
		{"picket_process_group_threads", []string{"user", "mysql", "comm", "mysqld"}, 28},
		{"picket_sockets", []string{"type", "tcp"}, float64(src.snap.Sockets.Totals.TCP)},
		{"picket_tcp_sockets", []string{"state", "ESTABLISHED"}, float64(src.snap.Sockets.TCPStates["ESTABLISHED"])},
		{"picket_sockstat_tcp_orphans", nil, 21564},
		{"picket_tcp_max_orphans", nil, 65536},
		{"picket_tcp_mem_pages", []string{"level", "low"}, 3093984},
		{"picket_tcp_mem_pages", []string{"level", "pressure"}, 4125312},
		{"picket_tcp_mem_pages", []string{"level", "high"}, 6187968},
		{"picket_sockstat_tcp_mem_pages", nil, 1894},
		{"picket_filefd_allocated", nil, 14880},
		{"picket_filefd_maximum", nil, 3247617},
		{"picket_pid_max", nil, 32768},
		{"picket_threads_max", nil, 256939},
		{"picket_nf_conntrack_entries", nil, 1200},
		{"picket_nf_conntrack_entries_limit", nil, 262144},
		{"picket_psi_some_ratio", []string{"resource", "memory", "window", "10s"}, 0.4217},
		{"picket_psi_full_ratio", []string{"resource", "io", "window", "300s"}, 0.1003},
		{"picket_psi_some_seconds_total", []string{"resource", "cpu"}, 912.345678},
		{"picket_vmstat_oom_kill_total", nil, 2},
		{"picket_vmstat_pswpout_total", nil, 2234500},
		{"picket_beancounter_held", []string{"uid", "101", "resource", "kmemsize"}, 2854282},
		{"picket_beancounter_barrier", []string{"uid", "101", "resource", "lockedpages"}, 256},
		{"picket_finding_severity", []string{"id", "tcp-orphans"}, float64(orphans.Severity.ExitCode())},
		{"picket_doctor_status", nil, 2},
		{"picket_alarms_firing", []string{"rule", "tcp-orphans", "level", "critical"}, 1},
		{"picket_build_info", []string{"version", "v1.2.3", "goversion", runtimeVersion()}, 1},
		{"picket_collection_duration_seconds", nil, 0.12},
		{"picket_last_collection_timestamp_seconds", nil, float64(fixtureTime.Unix())},
		{"picket_config_last_reload_successful", nil, 1},
		{"picket_collection_errors", nil, 0},
		{"picket_kernel_messages_total", []string{"kind", "tcp-orphans"}, 14},
		{"picket_kernel_messages_total", []string{"kind", "oom-kill"}, 2},
		{"picket_kernel_messages_total", []string{"kind", "conntrack-full"}, 0},
		{"picket_kernel_log_records_total", []string{"class", "user"}, 1},
		{"picket_kernel_log_readable", nil, 1},
		{"picket_netstat_tcpext_total", []string{"counter", "TCPAbortOnMemory"}, 1412},
		{"picket_nf_conntrack_stat_total", []string{"counter", "early_drop"}, 4},
	} {
		if v, ok := sample(t, fams, tt.name, tt.labels...); !ok || v != tt.want {
			t.Errorf("%s%v = %v (found %v), want %v", tt.name, tt.labels, v, ok, tt.want)
		}
	}
	// The resolved alarm is not counted.
	if n := len(fams["picket_alarms_firing"].Metric); n != 1 {
		t.Errorf("picket_alarms_firing has %d series, want 1", n)
	}
	// Every beancounter row but the kernel's "dummy" placeholders.
	rows := 0
	for _, b := range src.snap.Beancounters {
		if b.Resource != "dummy" {
			rows++
		}
	}
	if n := len(fams["picket_beancounter_held"].Metric); n != rows || rows < 20 {
		t.Errorf("%d beancounter series, want %d", n, rows)
	}
	// Scraping must not reorder what the daemon shares.
	if !reflect.DeepEqual(src.snap, snaptest.Fixture(t, "moscow")) {
		t.Errorf("the scrape modified the snapshot")
	}
	// A refused reload shows.
	src.health.ConfigError = "bad"
	fams = parseMetrics(t, scrape(t, Options{Source: src}))
	if v, _ := sample(t, fams, "picket_config_last_reload_successful"); v != 0 {
		t.Errorf("config error: picket_config_last_reload_successful %v", v)
	}
}

func TestMetricsCardinality(t *testing.T) {
	groups := func(counts ...int) []snapshot.Group {
		var gs []snapshot.Group
		for i, c := range counts {
			gs = append(gs, snapshot.Group{User: fmt.Sprint("u", i), UID: uint32(i), Comm: "c", Count: c})
		}
		return gs
	}
	repeat := func(n, count int) []int { return slices.Repeat([]int{count}, n) }
	for _, tt := range []struct {
		name   string
		counts []int
		want   int
	}{
		{"few", repeat(5, 3), 5},
		{"top 20 of many small", repeat(300, 2), 20},
		{"every group over the minimum", append(repeat(25, 60), repeat(300, 2)...), 25},
		{"top 20 when few are over the minimum", append(repeat(5, 60), repeat(300, 2)...), 20},
		{"capped", repeat(900, 50), maxGroupSeries},
	} {
		t.Run(tt.name, func(t *testing.T) {
			src := loadedSource(t)
			src.snap.Processes.Groups = groups(tt.counts...)
			fams := parseMetrics(t, scrape(t, Options{Source: src}))
			if n := len(fams["picket_process_group_processes"].Metric); n != tt.want {
				t.Errorf("%d group series, want %d", n, tt.want)
			}
		})
	}
	src := loadedSource(t)
	src.snap.Sockets.Processes = nil
	for i := range 100 {
		src.snap.Sockets.Processes = append(src.snap.Sockets.Processes, snapshot.Holder{PID: 1000 + i, Comm: "h", User: "u", SocketCounts: snapshot.SocketCounts{TCP: i, Unix: 1}, Total: i + 1})
	}
	fams := parseMetrics(t, scrape(t, Options{Source: src, TopHolders: 7}))
	pids := map[string]bool{}
	for _, m := range fams["picket_socket_holder_sockets"].Metric {
		for _, l := range m.Label {
			if l.GetName() == "pid" {
				pids[l.GetValue()] = true
			}
		}
	}
	if len(pids) != 7 || !pids["1099"] || !pids["1093"] || pids["1092"] {
		t.Errorf("holders shown: %v, want the 7 heaviest", pids)
	}
}

func TestMetricsLabelValue(t *testing.T) {
	for in, want := range map[string]string{"ok": "ok", "a\xffb": "a\uFFFDb", "\xff\xfe": "\uFFFD", hostileComm: hostileComm} {
		if got := labelValue(in); got != want {
			t.Errorf("labelValue(%q) = %q, want %q", in, got, want)
		}
	}
	if !errors.Is(fmt.Errorf("x: %w", ErrNotFound), ErrNotFound) {
		t.Fatal("ErrNotFound does not wrap")
	}
}

func runtimeVersion() string { return runtime.Version() }

// TestMetricsCgroups: every limited cgroup, the heaviest unlimited ones
// (bounded whatever a runtime or a user makes), unlimited values absent,
// hostile paths passed through promtool-safe.
func TestMetricsCgroups(t *testing.T) {
	u := func(v uint64) *uint64 { return &v }
	src := loadedSource(t)
	src.snap.Cgroups = []snapshot.Cgroup{
		{Path: "/", PidsCurrent: u(100000)},
		{Path: "/system.slice/apache2.service", Unit: "apache2.service", PidsCurrent: u(498), PidsMax: u(512),
			PidsEventsMax: u(37), MemoryCurrent: u(1 << 30), MemoryMax: u(8 << 30), OOMKill: u(3),
			MemoryEvents: map[string]uint64{"max": 1204}, Processes: 20},
		{Path: "/evil\"\n{x=\"y\"}\xff", PidsCurrent: u(2), PidsMax: u(2)},
	}
	for i := range 1000 { // a Kubernetes node's unlimited cgroups
		src.snap.Cgroups = append(src.snap.Cgroups, snapshot.Cgroup{Path: fmt.Sprintf("/kubepods/pod%d", i), PidsCurrent: u(uint64(i)), MemoryCurrent: u(uint64(i) << 20)})
	}
	text := scrape(t, Options{Source: src, TopGroups: 20})
	fams := parseMetrics(t, text)
	a := []string{"path", "/system.slice/apache2.service", "unit", "apache2.service"}
	for name, want := range map[string]float64{"picket_cgroup_tasks": 498, "picket_cgroup_tasks_max": 512,
		"picket_cgroup_forks_refused_total": 37, "picket_cgroup_memory_max_bytes": 8 << 30, "picket_cgroup_oom_kills_total": 3,
		"picket_cgroup_memory_max_events_total": 1204, "picket_cgroup_processes": 20} {
		if v, ok := sample(t, fams, name, a...); !ok || v != want {
			t.Errorf("%s = %v %v, want %v", name, v, ok, want)
		}
	}
	if _, ok := sample(t, fams, "picket_cgroup_memory_high_bytes", a...); ok {
		t.Error("an unlimited memory.high has a series")
	}
	if n := len(fams["picket_cgroup_tasks"].Metric); n > 2+40 || n < 22 {
		t.Errorf("%d cgroup series: want the 2 limited and at most 20+20 of the rest", n)
	}
	if _, ok := sample(t, fams, "picket_cgroup_tasks", "path", "/", "unit", ""); ok {
		t.Error("the root cgroup has a series")
	}
	if _, ok := sample(t, fams, "picket_cgroup_tasks", "path", "/kubepods/pod999", "unit", ""); !ok {
		t.Error("the heaviest unlimited cgroup is missing")
	}
}

// The spool's size and its drops by reason, as the daemon reports them.
func TestMetricsSpool(t *testing.T) {
	fams := parseMetrics(t, scrape(t, Options{Source: loadedSource(t)}))
	if v := fams["picket_spool_batches"].GetMetric()[0].GetGauge().GetValue(); v != 2 {
		t.Errorf("picket_spool_batches = %v", v)
	}
	got := map[string]float64{}
	for _, m := range fams["picket_spool_dropped_total"].GetMetric() {
		got[m.GetLabel()[0].GetValue()] = m.GetCounter().GetValue()
	}
	if want := map[string]float64{"age": 0, "count": 3, "bytes": 0, "permanent": 1}; !maps.Equal(got, want) {
		t.Errorf("picket_spool_dropped_total = %v, want %v", got, want)
	}
}

// Actions a rate limit refused, by rule and kind: what a fleet's
// PicketActionsRateLimited alert reads.
func TestMetricsRateLimited(t *testing.T) {
	fams := parseMetrics(t, scrape(t, Options{Source: loadedSource(t)}))
	v, ok := sample(t, fams, "picket_actions_rate_limited_total", "rule", "ProcNumChkRed", "kind", "kill")
	if !ok || v != 7 {
		t.Errorf("picket_actions_rate_limited_total{rule=ProcNumChkRed,kind=kill} = %v (present %v), want 7", v, ok)
	}
}

func grepLines(text, sub string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
