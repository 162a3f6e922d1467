package rules

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/picket-guard/picket/internal/alarm"
	"github.com/picket-guard/picket/internal/snapshot"
)

// Stand-ins for notify's and act's specs, with the fields the examples use.
// cmd/picket's tests load the examples with the real ones.
type mailSpec struct {
	To       []string `yaml:"to"`
	From     string   `yaml:"from"`
	Server   string   `yaml:"server"`
	StartTLS string   `yaml:"starttls"`
}
type logSpec struct {
	Path   string `yaml:"path"`
	Stderr bool   `yaml:"stderr"`
	Format string `yaml:"format"`
}
type killSpec struct {
	User     string        `yaml:"user"`
	Comm     string        `yaml:"comm"`
	PID      string        `yaml:"pid"`
	Signal   string        `yaml:"signal"`
	Grace    time.Duration `yaml:"grace"`
	Then     string        `yaml:"then"`
	Youngest int           `yaml:"youngest"`
	Until    struct {
		Below int `yaml:"below"`
	} `yaml:"until"`
	MaxTries   int           `yaml:"max_tries"`
	MaxTime    time.Duration `yaml:"max_time"`
	MaxTargets int           `yaml:"max_targets"`
}

func (k *killSpec) Validate() error {
	if k.User == "" && k.Comm == "" && k.PID == "" {
		return errString("kill needs a selector (user, comm or pid)")
	}
	return nil
}

type webhookSpec struct {
	URL     string        `yaml:"url"`
	Timeout time.Duration `yaml:"timeout"`
	Retries int           `yaml:"retries"`
}
type throttleSpec struct {
	Port  int           `yaml:"port"`
	Proto string        `yaml:"proto"`
	Mode  string        `yaml:"mode"`
	For   time.Duration `yaml:"for"`
}
type limitSpec struct {
	Unit    string        `yaml:"unit"`
	Cgroup  string        `yaml:"cgroup"`
	PidsMax string        `yaml:"pids_max"`
	For     time.Duration `yaml:"for"`
}
type sysctlSpec struct {
	Key   string `yaml:"key"`
	Value string `yaml:"value"`
}

type archiveSpec struct {
	Path     string   `yaml:"path"`
	To       string   `yaml:"to"`
	Roots    []string `yaml:"roots"`
	IfExists bool     `yaml:"if_exists"`
}

type errString string

func (e errString) Error() string { return string(e) }

var testReg = Registry{
	Output: func(k string) (any, bool) {
		switch k {
		case "mail":
			return &mailSpec{}, true
		case "log":
			return &logSpec{}, true
		case "webhook":
			return &webhookSpec{}, true
		}
		return nil, false
	},
	Action: func(k string) (any, bool) {
		switch k {
		case "kill":
			return &killSpec{}, true
		case "archive":
			return &archiveSpec{}, true
		case "throttle":
			return &throttleSpec{}, true
		case "sysctl":
			return &sysctlSpec{}, true
		case "limit":
			return &limitSpec{}, true
		}
		return nil, false
	},
	Protect:     func() any { return &protectSpec{} },
	OutputKinds: []string{"log", "mail"},
	ActionKinds: []string{"archive", "kill"},
}

// protectSpec stands in for act.Protected.
type protectSpec struct {
	Exes  []string `yaml:"exes"`
	Units []string `yaml:"units"`
	Users []string `yaml:"users"`
}

// Validate refuses relative paths and empty names, each its own mistake.
func (p *protectSpec) Validate() error {
	var errs []error
	for _, e := range p.Exes {
		if !filepath.IsAbs(e) {
			errs = append(errs, fmt.Errorf("exes: %q is not absolute", e))
		}
	}
	for _, u := range p.Users {
		if u == "" {
			errs = append(errs, errors.New("users: an empty name"))
		}
	}
	return errors.Join(errs...)
}

func groups(gs ...snapshot.Group) *Input {
	s := &snapshot.Snapshot{Time: time.Unix(1_800_000_000, 0)}
	for _, g := range gs {
		s.Processes.Total += g.Count
	}
	s.Processes.Groups = gs
	return &Input{Snapshot: s}
}

func g(user, comm string, n int) snapshot.Group {
	return snapshot.Group{User: user, Comm: comm, Count: n, Threads: n}
}

// storm is the imapd storm on moscow: the rows PIKT's ps|sort|uniq -c gave.
var storm = groups(g("alice", "imapd", 100), g("bob", "imapd", 25), g("carol", "sendmail", 65),
	g("www-data", "httpd", 45), g("nobody", "ypserv", 12), g("root", "cron", 3))

type fired struct{ rule, cse, user, comm string }

func evalAll(t *testing.T, cfg *Config, host string, in *Input) ([]fired, []Event) {
	t.Helper()
	e := NewEngine(cfg, cfg.Host(host), EngineOptions{IgnoreHysteresis: true})
	evs, err := e.Evaluate(in, e.Rules())
	if err != nil {
		t.Fatalf("Evaluate: %v", err)
	}
	var out []fired
	for _, ev := range evs {
		out = append(out, fired{ev.Alarm.Rule, ev.Alarm.Case, ev.Alarm.Row["user"].(string), ev.Alarm.Row["comm"].(string)})
	}
	return out, evs
}

func TestProcNumChkMoscow(t *testing.T) {
	cfg, err := Load("../../examples/procnumchk.yaml", testReg)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	got, evs := evalAll(t, cfg, "moscow", storm)
	want := []fired{
		{"ProcNumChkEmergency", "diagnostics", "alice", "imapd"},
		{"ProcNumChkEmergency", "imapd", "alice", "imapd"},
		{"ProcNumChkEmergency", "diagnostics", "bob", "imapd"},
		// bob's 25 imapd matched the imapd case (below 60): `next`, so the
		// default case (20) does not see them — as in PIKT.
		{"ProcNumChkEmergency", "diagnostics", "carol", "sendmail"},
		{"ProcNumChkEmergency", "sendmail", "carol", "sendmail"},
		{"ProcNumChkEmergency", "diagnostics", "www-data", "httpd"},
		{"ProcNumChkEmergency", "http", "www-data", "httpd"},
		{"ProcNumChkRed", "diagnostics", "alice", "imapd"},
		{"ProcNumChkRed", "imapd", "alice", "imapd"},
		{"ProcNumChkRed", "diagnostics", "carol", "sendmail"},
		{"ProcNumChkRed", "diagnostics", "www-data", "httpd"},
	}
	if !equalFired(got, want) {
		t.Errorf("moscow fired:\n got %v\nwant %v", got, want)
	}
	for _, ev := range evs {
		if ev.Alarm.Rule == "ProcNumChkRed" && ev.Alarm.Case == "imapd" {
			if len(ev.Outputs) != 1 || ev.Outputs[0].Name != "mail" {
				t.Errorf("red imapd outputs = %+v", ev.Outputs)
			}
			if len(ev.Actions) != 3 {
				t.Fatalf("red imapd actions = %+v, want archive, archive, kill", ev.Actions)
			}
			a0 := ev.Actions[0].Spec.(*archiveSpec)
			a1 := ev.Actions[1].Spec.(*archiveSpec)
			k := ev.Actions[2].Spec.(*killSpec)
			if a0.Path != "/var/mail/alice" || a1.Path != "/var/mail/.alice.pop" || ev.Actions[0].Macro != "archive_mail_file" {
				t.Errorf("archives = %+v %+v", a0, a1)
			}
			if k.User != "alice" || k.Comm != "imapd" || k.Signal != "TERM" || k.Then != "KILL" || k.Until.Below != 1 {
				t.Errorf("kill = %+v", k)
			}
			if ev.Alarm.Message != "alice runs 100 imapd processes on moscow" || ev.Alarm.Level != alarm.Emergency {
				t.Errorf("alarm = %+v", ev.Alarm)
			}
		}
	}
	// The rendered specs are copies: the config's own stay templates.
	if s := cfg.Macros["kill_user_proc"].Do[0].Spec.(*killSpec); s.User != "{{.user}}" {
		t.Errorf("rendering changed the config: %q", s.User)
	}
}

func TestProcNumChkNantes(t *testing.T) {
	cfg, err := Load("../../examples/procnumchk.yaml", testReg)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := evalAll(t, cfg, "nantes", storm)
	// nantes: no Red rule, no moscow-only cases, default limit 10 — so
	// ypserv's 12 fire (the NIS server's "ypserv storms").
	want := []fired{}
	for _, row := range []struct{ u, c string }{{"alice", "imapd"}, {"bob", "imapd"}, {"carol", "sendmail"}, {"www-data", "httpd"}, {"nobody", "ypserv"}} {
		want = append(want, fired{"ProcNumChkEmergency", "diagnostics", row.u, row.c}, fired{"ProcNumChkEmergency", "default", row.u, row.c})
	}
	if !equalFired(got, want) {
		t.Errorf("nantes fired:\n got %v\nwant %v", got, want)
	}
	// Another host gets neither rule.
	if got, _ := evalAll(t, cfg, "paris", storm); len(got) != 0 {
		t.Errorf("paris fired %v", got)
	}
}

func equalFired(a, b []fired) bool {
	key := func(f fired) string { return f.rule + "|" + f.cse + "|" + f.user + "|" + f.comm }
	as, bs := make([]string, len(a)), make([]string, len(b))
	for i := range a {
		as[i] = key(a[i])
	}
	for i := range b {
		bs[i] = key(b[i])
	}
	sort.Strings(as)
	sort.Strings(bs)
	return strings.Join(as, "\n") == strings.Join(bs, "\n")
}

func loadString(t *testing.T, src string) (*Config, error) {
	t.Helper()
	dir := t.TempDir()
	p := filepath.Join(dir, "picket.yaml")
	if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	return Load(p, testReg)
}

// TestHysteresis: after N consecutive matches, for a duration, re-notify,
// and resolve when the condition clears.
func TestHysteresis(t *testing.T) {
	cfg, err := loadString(t, `
outputs: {ops: {log: {stderr: true}}}
rules:
  - name: storm
    table: process_groups
    after: 3
    renotify: 10m
    if: count >= 50
    then: [ops]
`)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_800_000_000, 0)
	e := NewEngine(cfg, cfg.Host("h"), EngineOptions{Now: func() time.Time { return now }})
	step := func(n int) []Event {
		now = now.Add(time.Minute)
		evs, err := e.Evaluate(groups(g("alice", "imapd", n)), e.Rules())
		if err != nil {
			t.Fatal(err)
		}
		return evs
	}
	for i := 1; i <= 2; i++ {
		if evs := step(80); len(evs) != 0 {
			t.Fatalf("match %d fired before after: 3: %+v", i, evs)
		}
	}
	evs := step(80)
	if len(evs) != 1 || !evs[0].Notify || evs[0].Alarm.Status != alarm.Firing || len(evs[0].Outputs) != 1 {
		t.Fatalf("third match: %+v", evs)
	}
	if !evs[0].Alarm.StartsAt.Equal(now.Add(-2 * time.Minute)) {
		t.Errorf("starts_at = %v, want the first match", evs[0].Alarm.StartsAt)
	}
	// Still matching: an event (actions run each time) but no notification
	// until renotify is due.
	evs = step(80)
	if len(evs) != 1 || evs[0].Notify || len(evs[0].Outputs) != 0 {
		t.Fatalf("still firing: %+v", evs)
	}
	for i := 0; i < 9; i++ {
		evs = step(80)
	}
	if !evs[0].Notify {
		t.Errorf("renotify after 10m did not notify")
	}
	evs = step(10)
	if len(evs) != 1 || evs[0].Alarm.Status != alarm.Resolved || !evs[0].Notify || len(evs[0].Actions) != 0 || evs[0].Alarm.EndsAt.IsZero() {
		t.Fatalf("resolve: %+v", evs)
	}
	if evs := step(10); len(evs) != 0 {
		t.Errorf("resolved twice: %+v", evs)
	}
}

// TestForDuration: `for` holds the alarm until the condition has lasted.
func TestForDuration(t *testing.T) {
	cfg, err := loadString(t, `
rules:
  - name: storm
    table: process_groups
    for: 150s
    if: count >= 50
    then: [{log: {stderr: true}}]
`)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(0, 0)
	e := NewEngine(cfg, cfg.Host("h"), EngineOptions{Now: func() time.Time { return now }})
	fires := 0
	for i := 0; i < 4; i++ {
		evs, _ := e.Evaluate(groups(g("a", "x", 60)), e.Rules())
		if len(evs) > 0 && i < 3 {
			t.Errorf("fired at %s", time.Duration(i)*time.Minute)
		}
		fires += len(evs)
		now = now.Add(time.Minute)
	}
	if fires != 1 {
		t.Errorf("fired %d times, want once at 3m", fires)
	}
}

// TestPrevRising: a socket leak is a count that keeps growing.
func TestPrevRising(t *testing.T) {
	cfg, err := loadString(t, `
rules:
  - name: leak
    table: socket_holders
    if: rising.total >= 3 && total - prev.total > 0
    then: [{log: {stderr: true}}]
`)
	if err != nil {
		t.Fatal(err)
	}
	e := NewEngine(cfg, cfg.Host("h"), EngineOptions{IgnoreHysteresis: true})
	var fired []int
	for i, n := range []int{10, 20, 30, 40, 50, 50, 60} {
		s := &snapshot.Snapshot{}
		s.Sockets.Processes = []snapshot.Holder{{PID: 42, Comm: "leaky", SocketCounts: snapshot.SocketCounts{UDP: n}, Total: n}}
		evs, err := e.Evaluate(&Input{Snapshot: s}, e.Rules())
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range evs {
			if ev.Alarm.Status == alarm.Firing {
				fired = append(fired, i)
			}
		}
	}
	if len(fired) != 2 || fired[0] != 3 || fired[1] != 4 {
		t.Errorf("fired at evaluations %v, want 3 and 4 (three rises in a row)", fired)
	}
}

// TestErrors: every mistake has its position and names what is wrong.
func TestErrors(t *testing.T) {
	cases := []struct{ src, want string }{
		{"rules:\n  - name: a\n    table: process_groups\n    colour: red\n", `:4:5: config.rules[0]: unknown key "colour"`},
		{"rules:\n  - name: a\n    table: processgroups\n", `:3:12: rule a: table "processgroups": want one of`},
		{"rules:\n  - name: a\n    table: process_groups\n    if: cuont >= 5\n", `:4:9: rule a case default: if: unknown name cuont (table process_groups has: comm, count,`},
		{"rules:\n  - name: a\n    table: process_groups\n    if: count >= 5 &&\n", `:4:21: rule a case default: if: unexpected token EOF`},
		{"rules:\n  - name: a\n    table: process_groups\n    if: count >= vars.limt\n", `:4:23: rule a case default: if: unknown variable vars.limt`},
		{"rules:\n  - name: a\n    table: process_groups\n    level: loud\n", `:4:12: rule a: unknown level "loud"`},
		{"rules:\n  - name: a\n    table: process_groups\n    every: soon\n", `:4:12: config.rules[0].every: "soon" is not a duration`},
		{"rules:\n  - name: a\n    table: process_groups\n    every: 1m\n    drift: 2m\n", `:5:12: rule a: drift 2m0s must be shorter than every 1m0s`},
		{"rules:\n  - name: a\n    table: process_groups\n    then: [ops]\n", `:4:12: unknown output "ops"`},
		{"rules:\n  - name: a\n    table: process_groups\n    then: [{zap: {}}]\n", `:4:13: rule a case default: then: unknown kind "zap"`},
		{"rules:\n  - name: a\n    table: process_groups\n    then: [{kill: {signal: TERM}}]\n", `:4:19: rule a case default: then.kill: kill needs a selector`},
		{"rules:\n  - name: a\n    table: process_groups\n    then: [{kill: {user: x, sgnal: TERM}}]\n", `:4:29: rule a case default: then.kill: unknown key "sgnal"`},
		{"rules:\n  - name: a\n    table: process_groups\n    then: [{call: nope}]\n", `:4:12: unknown macro "nope"`},
		{"macros:\n  m: {params: [u], do: [{kill: {user: \"{{.u}}\"}}]}\nrules:\n  - name: a\n    table: process_groups\n    then: [{call: m, args: {x: y}}]\n", `call m: missing argument "u"`},
		{"rules:\n  - name: a\n    table: process_groups\n    message: \"{{.usr}} has {{.count}}\"\n", `:4:14: rule a: message: template: `},
		{"rules:\n  - name: a\n    table: process_groups\n  - name: a\n    table: processes\n", `:4:11: rule "a" is defined twice (first at `},
		{"rules:\n  - name: a\n    table: process_groups\n    status: maybe\n", `:4:13: rule a: status "maybe": want active or inactive`},
		{"rules: [\n", `:1:1: did not find expected node content`},
		{"include: [nope.yaml]\n", `:1:11: include: open `},
		{"rules:\n  - name: a\n    table: process_groups\n    hosts: [\"web-[\"]\n", `:4:12: rule a: hosts: bad host glob`},
		{"rules:\n  - name: a\n    table: process_groups\n    if: comm matches \"im(apd\"\n", `:4:14: rule a case default: if: error parsing regexp`},
	}
	for _, tc := range cases {
		_, err := loadString(t, tc.src)
		if err == nil {
			t.Errorf("no error for:\n%s", tc.src)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "picket.yaml:") {
			t.Errorf("error for:\n%s\n got: %v\nwant: …%s…", tc.src, err, tc.want)
		}
	}
}

// TestAllErrorsAtOnce: the loader reports every mistake, not the first.
func TestAllErrorsAtOnce(t *testing.T) {
	_, err := loadString(t, "rules:\n  - name: a\n    table: nope\n  - name: b\n    table: process_groups\n    if: zz > 1\n    bogus: 1\n")
	el, ok := err.(ErrorList)
	if !ok || len(el) != 3 {
		t.Fatalf("want 3 errors, got %v", err)
	}
}

func TestIncludeAndHostLabels(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "common.yaml"), []byte("outputs: {ops: {log: {stderr: true}}}\nvars: {limit: {\"label:web\": 40, default: 20}}\n"), 0o644)
	main := filepath.Join(dir, "main.yaml")
	os.WriteFile(main, []byte("include: [common.yaml]\nhosts: {\"web-*\": {labels: [web]}}\nrules:\n  - name: a\n    table: process_groups\n    hosts: [\"!db-*\"]\n    if: count >= vars.limit\n    then: [ops]\n"), 0o644)
	cfg, err := Load(main, testReg)
	if err != nil {
		t.Fatal(err)
	}
	in := groups(g("www", "httpd", 30))
	if got, _ := evalAll(t, cfg, "web-1", in); len(got) != 0 {
		t.Errorf("web-1 (limit 40) fired at 30: %v", got)
	}
	if got, _ := evalAll(t, cfg, "mail-1", in); len(got) != 1 {
		t.Errorf("mail-1 (limit 20) did not fire at 30: %v", got)
	}
	if got, _ := evalAll(t, cfg, "db-1", in); len(got) != 0 {
		t.Errorf("db-1 is excluded: %v", got)
	}
	os.WriteFile(filepath.Join(dir, "loop.yaml"), []byte("include: [loop.yaml]\n"), 0o644)
	if _, err := Load(filepath.Join(dir, "loop.yaml"), testReg); err == nil || !strings.Contains(err.Error(), "include cycle") {
		t.Errorf("include cycle: %v", err)
	}
}

func TestNextRunDrift(t *testing.T) {
	cfg, err := Load("../../examples/procnumchk.yaml", testReg)
	if err != nil {
		t.Fatal(err)
	}
	r := cfg.Rules[0]
	if r.Every != 5*time.Minute || r.Drift != time.Minute {
		t.Fatalf("schedule = %s ± %s", r.Every, r.Drift)
	}
	from := time.Unix(0, 0)
	for i := 0; i < 200; i++ {
		n := NextRun(r, from, nil).Sub(from)
		if n != 5*time.Minute {
			t.Fatalf("without randomness next = %s", n)
		}
	}
}

func FuzzLoad(f *testing.F) {
	b, _ := os.ReadFile("../../examples/procnumchk.yaml")
	f.Add(b)
	f.Add([]byte("rules: [{name: a, table: kernel, if: 'orphans * 4 > tcp_max_orphans'}]"))
	f.Add([]byte("macros: {m: {params: [a], do: [{call: m, args: {a: x}}]}}"))
	f.Fuzz(func(t *testing.T, b []byte) {
		cfg, err := LoadBytes("fuzz.yaml", b, testReg)
		if err == nil && cfg == nil {
			t.Fatal("nil config without error")
		}
		if err == nil {
			e := NewEngine(cfg, cfg.Host("moscow"), EngineOptions{IgnoreHysteresis: true})
			e.Evaluate(storm, e.Rules())
		}
	})
}

// TestExamplesLoad: every shipped example and the built-in default load.
// (cmd/picket's tests load them with the real notify and act specs too.)
func TestExamplesLoad(t *testing.T) {
	files, _ := filepath.Glob("../../examples/*.yaml")
	if len(files) < 5 {
		t.Fatalf("examples: %v", files)
	}
	for _, f := range files {
		if _, err := Load(f, testReg); err != nil {
			t.Errorf("%s:\n%v", f, err)
		}
	}
	if _, err := LoadBytes(DefaultConfigName, DefaultConfig, testReg); err != nil {
		t.Errorf("default: %v", err)
	}
}

// TestSocketLeakExample: the socket-leak example over a sequence of looks
// at a process whose sockets keep growing, and a bystander whose do not.
func TestSocketLeakExample(t *testing.T) {
	cfg, err := Load("../../examples/socket-leak.yaml", testReg)
	if err != nil {
		t.Fatal(err)
	}
	e := NewEngine(cfg, cfg.Host("h"), EngineOptions{IgnoreHysteresis: true})
	var fired []string
	for i := 0; i < 8; i++ {
		s := &snapshot.Snapshot{}
		leak := 200 + 40*i
		s.Sockets.Processes = []snapshot.Holder{
			{PID: 42, User: "app", Comm: "leaky", SocketCounts: snapshot.SocketCounts{Unix: leak}, Total: leak, FDs: leak + 3, FDLimit: 1024},
			{PID: 7, User: "root", Comm: "steady", SocketCounts: snapshot.SocketCounts{UDP: 500}, Total: 500, FDs: 503, FDLimit: 1024},
		}
		evs, err := e.Evaluate(&Input{Snapshot: s}, e.Rules())
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range evs {
			fired = append(fired, fmt.Sprintf("%d:%s:%v", i, ev.Alarm.Case, ev.Alarm.Row["pid"]))
			if !strings.Contains(ev.Alarm.Message, "up from") {
				t.Errorf("message = %q", ev.Alarm.Message)
			}
		}
	}
	want := "5:growing:42 6:growing:42 7:growing:42"
	if strings.Join(fired, " ") != want {
		t.Errorf("fired %v, want %s", fired, want)
	}
}

// TestTableNeeds: what a rule's table is built from comes from the table
// registry: only socket_holders needs the socket tables, only findings
// needs doctor's findings.
func TestTableNeeds(t *testing.T) {
	var src strings.Builder
	src.WriteString("rules:\n")
	for _, name := range TableNames() {
		field := ""
		for _, f := range sortedKeys(tables()[name].fields) {
			if _, ok := tables()[name].fields[f].(int); ok {
				field = f
				break
			}
		}
		fmt.Fprintf(&src, "  - {name: on_%s, table: %s, if: %s > 0}\n", name, name, field)
	}
	cfg, err := loadString(t, src.String())
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Rules) != len(TableNames()) {
		t.Fatalf("%d rules for %d tables", len(cfg.Rules), len(TableNames()))
	}
	for _, r := range cfg.Rules {
		if got, want := r.NeedsSockets(), r.Table == "socket_holders"; got != want {
			t.Errorf("%s: NeedsSockets = %v", r.Table, got)
		}
		if got, want := r.NeedsFindings(), r.Table == "findings"; got != want {
			t.Errorf("%s: NeedsFindings = %v", r.Table, got)
		}
		if got, want := r.NeedsKernelLog(), strings.HasPrefix(r.Table, "kernel_"); got != want {
			t.Errorf("%s: NeedsKernelLog = %v", r.Table, got)
		}
	}
	if (&Rule{}).NeedsSockets() || (&Rule{}).NeedsFindings() {
		t.Error("a rule without a table needs something")
	}
}

// TestCgroupsTable: a rule over cgroups that fires when a limited cgroup
// refuses forks between two looks; unlimited values are -1.
func TestCgroupsTable(t *testing.T) {
	cfg, err := loadString(t, `
rules:
  - name: tasks-refused
    table: cgroups
    where: limited && pids_max > 0
    if: rising.pids_events_max >= 1 && pids_percent >= 90
    then: [{log: {stderr: true}}]
`)
	if err != nil {
		t.Fatal(err)
	}
	u := func(v uint64) *uint64 { return &v }
	look := func(events uint64) *Input {
		s := &snapshot.Snapshot{Time: time.Unix(1_800_000_000, 0)}
		s.Cgroups = []snapshot.Cgroup{
			{Path: "/"},
			{Path: "/system.slice/apache2.service", Unit: "apache2.service", PidsCurrent: u(500), PidsMax: u(512), PidsEventsMax: u(events)},
			{Path: "/system.slice/cron.service", Unit: "cron.service", PidsCurrent: u(1)},
		}
		return &Input{Snapshot: s}
	}
	e := NewEngine(cfg, cfg.Host("h"), EngineOptions{IgnoreHysteresis: true})
	var rows []Row
	for _, ev := range []uint64{3, 3, 9} {
		evs, err := e.Evaluate(look(ev), e.Rules())
		if err != nil {
			t.Fatal(err)
		}
		for _, x := range evs {
			if x.Alarm.Status == alarm.Firing {
				rows = append(rows, x.Alarm.Row)
			}
		}
	}
	if len(rows) != 1 || rows[0]["path"] != "/system.slice/apache2.service" || rows[0]["unit"] != "apache2.service" {
		t.Errorf("fired %v", rows)
	}
	all := tables()["cgroups"].rows(look(0))
	if len(all) != 2 || all[1]["pids_max"] != -1 || all[1]["limited"] != false {
		t.Errorf("rows %v: the root is left out, unlimited is -1", all)
	}
}

// TestKernelLogExample: the kernel's messages as rows, each OOM kill an
// alarm of its own naming the victim, kinds counted per row.
func TestKernelLogExample(t *testing.T) {
	cfg, err := Load("../../examples/kernel-log.yaml", testReg)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_800_000_000, 0).UTC()
	uid := uint32(1001)
	msg := func(seq uint64, kind string, age time.Duration, f snapshot.KernelFields) snapshot.KernelMessage {
		return snapshot.KernelMessage{Seq: seq, Kind: kind, Time: now.Add(-age), Level: 3, Text: "...", Fields: f}
	}
	kl := &snapshot.KernelLog{Available: true, Kinds: []snapshot.KernelKind{
		{Kind: "oom-kill", Findings: []string{"memory-thrashing"}, Count: 3, LastHour: 2, Last: now.Add(-time.Minute), Recent: []snapshot.KernelMessage{
			msg(10, "oom-kill", 2*time.Hour, snapshot.KernelFields{PID: 7, Comm: "old"}),
			msg(20, "oom-kill", 30*time.Minute, snapshot.KernelFields{PID: 8, Comm: "worker", UID: &uid, Cgroup: "/app", Memcg: true}),
			msg(30, "oom-kill", time.Minute, snapshot.KernelFields{PID: 9, Comm: "$(reboot)", UID: &uid, Cgroup: "/app"}),
		}},
		{Kind: "conntrack-full", Findings: []string{"conntrack"}, Count: 40, LastHour: 12, Last: now.Add(-5 * time.Minute)},
		{Kind: "fork-rejected", Findings: []string{"process-storm"}},
	}}
	e := NewEngine(cfg, cfg.Host("h"), EngineOptions{IgnoreHysteresis: true})
	evs, err := e.Evaluate(&Input{Snapshot: &snapshot.Snapshot{Time: now, KernelLog: kl}}, e.Rules())
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, ev := range evs {
		got = append(got, ev.Alarm.Rule+": "+ev.Alarm.Message)
	}
	want := []string{
		"oom-kill: the OOM killer killed pid 8 (worker, uid 1001) in cgroup /app (its memory cgroup's limit)",
		"oom-kill: the OOM killer killed pid 9 ($(reboot), uid 1001) in cgroup /app (the host's memory)",
		"conntrack-full: netfilter dropped packets for a full conntrack table: 12 messages in the last hour",
	}
	sort.Strings(got)
	sort.Strings(want)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("events:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// No kernel log (a fixture tree without one): no rows, no error.
	e = NewEngine(cfg, cfg.Host("h"), EngineOptions{IgnoreHysteresis: true})
	if evs, err := e.Evaluate(&Input{Snapshot: &snapshot.Snapshot{Time: now}}, e.Rules()); err != nil || len(evs) != 0 {
		t.Errorf("without a kernel log: %v %v", evs, err)
	}
}
