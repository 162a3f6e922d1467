package rules

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/picket-guard/picket/internal/alarm"
	"github.com/picket-guard/picket/internal/snapshot"
)

// The edges of the engine and the loader: each test pins one decision a
// slip of a comparison or a dropped branch would change.

// TestBareIfThatDoesNotFireLetsTheRowGoOn: PIKT's two shapes of a case. A
// bare `if … next fi` decides the row only when it fires: one that does not
// fire leaves the row to the cases after it. A case with a match decides the
// row once it matches, fired or not.
func TestBareIfThatDoesNotFireLetsTheRowGoOn(t *testing.T) {
	cfg, err := loadString(t, `
rules:
  - name: storm
    table: process_groups
    cases:
      - name: emergency
        if: count >= 50
      - name: imapd
        match: comm == "imapd"
        if: count >= 60
      - name: default
        if: count >= 20
`)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := evalAll(t, cfg, "h", groups(g("carol", "sendmail", 30), g("bob", "imapd", 40), g("alice", "imapd", 70), g("dave", "httpd", 5)))
	want := []fired{
		// 30 is below the emergency's 50: the row goes on to default.
		{"storm", "default", "carol", "sendmail"},
		// bob's imapd matched the imapd case (40, below its 60): decided
		// there, the default's 20 does not see it.
		// alice's 70 fired the emergency case: decided.
		{"storm", "emergency", "alice", "imapd"},
	}
	if !equalFired(got, want) {
		t.Errorf("fired:\n got %v\nwant %v", got, want)
	}
}

// TestForEdge: a condition that has lasted exactly `for` fires (the
// kernel's "for five minutes" is five minutes, not five and one look).
func TestForEdge(t *testing.T) {
	cfg, err := loadString(t, `
rules:
  - name: storm
    table: process_groups
    for: 2m
    if: count >= 50
`)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_800_000_000, 0)
	e := NewEngine(cfg, cfg.Host("h"), EngineOptions{Now: func() time.Time { return now }})
	var firedAt []time.Duration
	for i := 0; i < 4; i++ {
		evs, err := e.Evaluate(groups(g("a", "x", 60)), e.Rules())
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range evs {
			if ev.Notify {
				firedAt = append(firedAt, time.Duration(i)*time.Minute)
			}
		}
		now = now.Add(time.Minute)
	}
	if len(firedAt) != 1 || firedAt[0] != 2*time.Minute {
		t.Errorf("notified at %v, want once, at 2m", firedAt)
	}
}

// TestRisingCountsOnlyRises: rising.FIELD is the number of looks in a row
// a field grew, on integer fields (process counts) as on float ones (a
// kernel message's age): an equal or lower value ends the streak.
func TestRisingCountsOnlyRises(t *testing.T) {
	cfg, err := loadString(t, `
rules:
  - name: growing
    table: process_groups
    if: rising.count >= 2
`)
	if err != nil {
		t.Fatal(err)
	}
	e := NewEngine(cfg, cfg.Host("h"), EngineOptions{IgnoreHysteresis: true})
	var firing []int
	for i, n := range []int{50, 40, 30, 31, 32, 32, 33, 34, 20} {
		evs, err := e.Evaluate(groups(g("alice", "imapd", n)), e.Rules())
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range evs {
			if ev.Alarm.Status == alarm.Firing {
				firing = append(firing, i)
			}
		}
	}
	// 30→31→32 is two rises (look 4), 32→32 ends it, 32→33→34 (look 7).
	if want := []int{4, 7}; !equalInts(firing, want) {
		t.Errorf("firing at looks %v, want %v", firing, want)
	}
	for _, tc := range []struct {
		a, b any
		want bool
	}{
		{2, 1, true}, {1, 2, false}, {1, 1, false},
		{2.5, 1.5, true}, {1.5, 2.5, false}, {1.5, 1.5, false},
		{2, 1.0, false}, {2.0, 1, false}, {"b", "a", false}, {nil, 1, false},
	} {
		if got := greater(tc.a, tc.b); got != tc.want {
			t.Errorf("greater(%v, %v) = %v, want %v", tc.a, tc.b, got, tc.want)
		}
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestEvaluationErrorsAreReported: an expression that fails on a row (an
// integer division by zero) is reported by Evaluate with its position,
// whether it is a where, a match or an if; the other rows and rules are
// still evaluated.
func TestEvaluationErrorsAreReported(t *testing.T) {
	for _, tc := range []struct{ name, rule, at string }{
		{"where", "where: count % (threads - count) == 0\n    if: count > 0", ":5:12:"},
		{"match", "cases:\n      - match: count % (threads - count) == 0\n        if: count > 0", ":6:16:"},
		{"if", "if: count % (threads - count) == 0", ":5:9:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := loadString(t, "rules:\n  - name: broken\n    table: process_groups\n    hosts: [h]\n    "+tc.rule+"\n  - name: fine\n    table: process_groups\n    if: count >= 10\n")
			if err != nil {
				t.Fatal(err)
			}
			e := NewEngine(cfg, cfg.Host("h"), EngineOptions{IgnoreHysteresis: true})
			// g() gives threads == count: the modulus is zero.
			evs, err := e.Evaluate(groups(g("alice", "imapd", 20), g("bob", "imapd", 30)), e.Rules())
			if err == nil || !strings.Contains(err.Error(), tc.at) || !strings.Contains(err.Error(), "divide by zero") {
				t.Errorf("Evaluate error = %v, want one at %s naming the division by zero", err, tc.at)
			}
			var fine int
			for _, ev := range evs {
				if ev.Alarm.Rule == "fine" {
					fine++
				}
			}
			if fine != 2 {
				t.Errorf("the other rule fired for %d rows, want 2: %+v", fine, evs)
			}
		})
	}
}

// TestResolveTellsTheCaseThatFired: an alarm that clears is told to the
// outputs of the case that raised it, not to the first case's.
func TestResolveTellsTheCaseThatFired(t *testing.T) {
	cfg, err := loadString(t, `
outputs:
  pager: {log: {stderr: true}}
  mail: {log: {stderr: true}}
  chat: {log: {stderr: true}}
rules:
  - name: storm
    table: process_groups
    cases:
      - name: red
        if: count >= 100
        then: [pager]
      - name: orange
        if: count >= 50
        then: [mail]
      - name: yellow
        if: count >= 20
        then: [chat]
`)
	if err != nil {
		t.Fatal(err)
	}
	e := NewEngine(cfg, cfg.Host("h"), EngineOptions{IgnoreHysteresis: true})
	if evs, err := e.Evaluate(groups(g("alice", "imapd", 60), g("bob", "imapd", 25)), e.Rules()); err != nil || len(evs) != 2 {
		t.Fatalf("fire: %+v %v", evs, err)
	}
	evs, err := e.Evaluate(groups(), e.Rules())
	if err != nil || len(evs) != 2 {
		t.Fatalf("resolve: %+v %v", evs, err)
	}
	for _, ev := range evs {
		want := map[string]string{"orange": "mail", "yellow": "chat"}[ev.Alarm.Case]
		if ev.Alarm.Status != alarm.Resolved || len(ev.Outputs) != 1 || ev.Outputs[0].Name != want {
			t.Errorf("resolved %s: status %v outputs %+v, want %s", ev.Alarm.Case, ev.Alarm.Status, ev.Outputs, want)
		}
	}
}

// TestVarWithoutValueHidesTheGlobalOne: a rule's variable that has no value
// for this host (no selector matches, no default) is unset there, not the
// global variable of the same name shining through: the rule's author
// meant "only on these hosts".
func TestVarWithoutValueHidesTheGlobalOne(t *testing.T) {
	cfg, err := loadString(t, `
hosts: {"web-*": {labels: [web]}}
vars: {limit: 20, other: 5}
rules:
  - name: a
    table: process_groups
    vars: {limit: {"label:web": 40}}
    if: count >= (vars.limit ?? 1000)
`)
	if err != nil {
		t.Fatal(err)
	}
	r := cfg.Rules[0]
	web := cfg.VarsFor(r, cfg.Host("web-1"))
	if web["limit"] != 40 || web["other"] != 5 {
		t.Errorf("web-1 vars = %v, want limit 40, other 5", web)
	}
	mail := cfg.VarsFor(r, cfg.Host("mail-1"))
	if v, ok := mail["limit"]; ok || mail["other"] != 5 {
		t.Errorf("mail-1 vars = %v: limit = %v, want it unset (and other 5)", mail, v)
	}
	in := groups(g("www", "httpd", 30))
	if got, _ := evalAll(t, cfg, "mail-1", in); len(got) != 0 {
		t.Errorf("mail-1 fired with the global limit: %v", got)
	}
	if got, _ := evalAll(t, cfg, "web-1", groups(g("www", "httpd", 45))); len(got) != 1 {
		t.Errorf("web-1 (limit 40) did not fire at 45: %v", got)
	}
}

// TestLoaderEdges: the loader's refusals at their edges.
func TestLoaderEdges(t *testing.T) {
	rule := "rules:\n  - name: a\n    table: process_groups\n"
	for _, tc := range []struct{ name, src, want string }{
		{"macro calling itself", "macros:\n  m: {do: [{call: m}]}\n" + rule + "    then: [{call: m}]\n", "macro call cycle: m → m"},
		{"macros calling each other", "macros:\n  m1: {do: [{call: m2}]}\n  m2: {do: [{log: {stderr: true}}, {call: m3}]}\n  m3: {do: [{call: m1}]}\n" + rule + "    then: [{call: m1}]\n", "macro call cycle: "},
		{"drift equal to every", rule + "    every: 1m\n    drift: 1m\n", ":5:12: rule a: drift 1m0s must be shorter than every 1m0s"},
		{"negative for", rule + "    for: -1m\n", "rule a: every, drift, for, after and renotify cannot be negative"},
		{"negative drift", rule + "    drift: -1s\n", "cannot be negative"},
		{"negative every", rule + "    every: -1m\n", "cannot be negative"},
		{"negative after", rule + "    after: -1\n", "cannot be negative"},
		{"negative renotify", rule + "    renotify: -1m\n", "cannot be negative"},
		{"case twice", rule + "    cases:\n      - {name: x, if: count > 1}\n      - {name: x, if: count > 2}\n", `rule a: case "x" appears twice`},
		{"cases and if", rule + "    if: count > 1\n    cases:\n      - {name: x, if: count > 2}\n", "give either cases or if/then, not both"},
		{"missing name", "rules:\n  - table: process_groups\n", ":2:5: rule: missing name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := loadString(t, tc.src)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error = %v, want …%s…", err, tc.want)
			}
		})
	}
	for _, ok := range []string{
		rule + "    every: 1m\n    drift: 59s\n",
		"macros:\n  m1: {do: [{call: m2}, {call: m2}]}\n  m2: {do: [{log: {stderr: true}}]}\n" + rule + "    then: [{call: m1}, {call: m2}]\n",
	} {
		if _, err := loadString(t, ok); err != nil {
			t.Errorf("refused:\n%s\n%v", ok, err)
		}
	}
}

// TestRuleNames: names are letters, digits, '-', '_' and '.', each range to
// its ends; the characters just outside each range are refused.
func TestRuleNames(t *testing.T) {
	for _, name := range []string{"a", "z", "A", "Z", "0", "9", "-", "_", ".", "ProcNumChk-Red_2.b", "azAZ09"} {
		if !isRuleName(name) {
			t.Errorf("isRuleName(%q) = false", name)
		}
	}
	for _, name := range []string{"", "`", "{", "@", "[", "/", ":", " ", "a b", "ok!", "é", "a/b", "x\x00"} {
		if isRuleName(name) {
			t.Errorf("isRuleName(%q) = true", name)
		}
	}
	_, err := loadString(t, "rules:\n  - name: \"imapd storm\"\n    table: process_groups\n")
	if err == nil || !strings.Contains(err.Error(), `:2:11: rule "imapd storm": names are letters, digits, '-', '_' and '.'`) {
		t.Errorf("a name with a space: %v", err)
	}
	if _, err := loadString(t, "rules:\n  - name: ProcNumChk-Red_2.b\n    table: process_groups\n"); err != nil {
		t.Errorf("a good name: %v", err)
	}
}

// TestRisingOnFloats: a float field's rises count as an integer's do.
func TestRisingOnFloats(t *testing.T) {
	cfg, err := loadString(t, `
rules:
  - name: ageing
    table: kernel_log
    if: rising.age >= 2
`)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_800_000_000, 0)
	e := NewEngine(cfg, cfg.Host("h"), EngineOptions{Now: func() time.Time { return now }, IgnoreHysteresis: true})
	var firing []int
	for i := 0; i < 4; i++ {
		kl := &snapshot.KernelLog{Available: true, Kinds: []snapshot.KernelKind{{Kind: "oom-kill", Count: 1, Last: time.Unix(1_800_000_000, 0)}}}
		evs, err := e.Evaluate(&Input{Snapshot: &snapshot.Snapshot{Time: now, KernelLog: kl}}, e.Rules())
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range evs {
			if ev.Alarm.Status == alarm.Firing {
				firing = append(firing, i)
			}
		}
		now = now.Add(time.Minute)
	}
	if want := []int{2, 3}; !equalInts(firing, want) {
		t.Errorf("firing at looks %v, want %v", firing, want)
	}
}

// TestNextRun: every plus a drift drawn in [-drift, +drift); no drift, or
// no randomness, is every exactly.
func TestNextRun(t *testing.T) {
	from := time.Unix(1_800_000_000, 0)
	rnd := rand.New(rand.NewPCG(1, 2))
	r := &Rule{Every: 5 * time.Minute}
	for range 50 {
		if got := NextRun(r, from, rnd).Sub(from); got != 5*time.Minute {
			t.Fatalf("no drift: next in %s", got)
		}
	}
	r.Drift = time.Minute
	seen := map[time.Duration]bool{}
	for range 200 {
		d := NextRun(r, from, rnd).Sub(from)
		if d < 4*time.Minute || d >= 6*time.Minute {
			t.Fatalf("drift 1m: next in %s, want within 5m ± 1m", d)
		}
		seen[d] = true
	}
	if len(seen) < 100 {
		t.Errorf("drift 1m: %d distinct delays in 200 draws", len(seen))
	}
}

// TestGlobExampleEdges: a glob ending in a lone backslash has no example
// (path.Match refuses it) and does not read past its end.
func TestGlobExampleEdges(t *testing.T) {
	for _, g := range []string{`web\`, `\`} {
		if n, ok := globExample(g); ok {
			t.Errorf("globExample(%q) = %q, true", g, n)
		}
	}
	if n, ok := globExample(`a\?`); !ok || n != "a?" {
		t.Errorf(`globExample("a\?") = %q, %v`, n, ok)
	}
}

// TestVarNames: variable names are identifiers (expressions read them as
// vars.NAME): letters, digits and '_', not starting with a digit.
func TestVarNames(t *testing.T) {
	for _, name := range []string{"_", "a", "z", "A", "Z", "a0", "a9", "_9", "max_Procs2"} {
		if !isIdent(name) {
			t.Errorf("isIdent(%q) = false", name)
		}
	}
	for _, name := range []string{"", "0", "9a", "`", "{", "@", "[", "a/", "a:", "a-b", "a.b", "é"} {
		if isIdent(name) {
			t.Errorf("isIdent(%q) = true", name)
		}
	}
	_, err := loadString(t, "vars: {9a: 1}\n")
	if err == nil || !strings.Contains(err.Error(), `:1:8: vars: "9a" is not a usable name`) {
		t.Errorf("vars 9a: %v", err)
	}
}

// TestDecodeEdges: an item with an empty spec is the kind's defaults, as a
// null one is; a number or boolean of the wrong form, and a label that is
// not a single value, is told once, at the value's own line and column (yaml.v3 gives the line only, and the decode
// of the whole document would place it at 1:1).
func TestDecodeEdges(t *testing.T) {
	for _, src := range []string{`then: [{log: ""}]`, `then: [{log: }]`, `then: [{log: {}}]`} {
		cfg, err := loadString(t, "rules:\n  - name: a\n    table: process_groups\n    "+src+"\n")
		if err != nil {
			t.Errorf("%s: %v", src, err)
			continue
		}
		if it := cfg.Rules[0].Cases[0].Then; len(it) != 1 || it[0].OutputKind != "log" {
			t.Errorf("%s: items %+v", src, it)
		}
	}
	for _, c := range []struct{ src, want string }{
		{"    after: many\n", `:4:12: config.rules[0].after: "many" is not a whole number`},
		{"    after: 1.5\n", `:4:12: config.rules[0].after: "1.5" is not a whole number`},
		{"    dry_run: maybe\n", `:4:14: config.rules[0].dry_run: "maybe" is not true or false`},
		// A mapping's values are walked: a label whose value is a list
		// or a mapping is told at the value, not at the document's start.
		{"    labels: {team: [a, b]}\n", `:4:20: config.rules[0].labels.team: want a single value, got a list`},
		{"    labels:\n      team: mail\n      owner:\n        name: x\n", `:7:9: config.rules[0].labels.owner: want a single value, got a mapping`},
		{"    labels: {team: mail, after: 3, level: 1.5}\n    after: x\n", `:5:12: config.rules[0].after: "x" is not a whole number`},
	} {
		_, err := loadString(t, "rules:\n  - name: a\n    table: process_groups\n"+c.src)
		if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "line ") || strings.Count(err.Error(), "\n") != 0 {
			t.Errorf("%s: got %v, want one error %s", strings.TrimSpace(c.src), err, c.want)
		}
	}
}

// TestInlineOutputs: an output written inside a rule is rendered for the
// row and named RULE/CASE#N after its place in the then-list; one whose
// template fails on this row is left out and its failure reported at its
// position, the rest still done.
func TestInlineOutputs(t *testing.T) {
	cfg, err := loadString(t, `
rules:
  - name: storm
    table: process_groups
    if: count >= 10
    then:
      - {kill: {user: "{{.user}}"}}
      - {log: {path: "/var/log/picket/{{.user}}.log"}}
      - {log: {path: "/var/log/picket/{{index .comm 5}}.log"}}
`)
	if err != nil {
		t.Fatal(err)
	}
	_, evs := evalAll(t, cfg, "h", groups(g("alice", "imapd", 20), g("bob", "sendmail", 30)))
	if len(evs) != 2 {
		t.Fatalf("events %+v", evs)
	}
	want := map[string]string{
		// index 5 of "imapd" is past its end: the third item fails.
		"alice": "storm/default#2 /var/log/picket/alice.log",
		// "sendmail"[5] is the byte 'a'.
		"bob": "storm/default#2 /var/log/picket/bob.log|storm/default#3 /var/log/picket/97.log",
	}
	for _, ev := range evs {
		user := ev.Alarm.Row["user"].(string)
		var got []string
		for _, o := range ev.Outputs {
			got = append(got, o.Name+" "+o.Spec.(*logSpec).Path)
		}
		if strings.Join(got, "|") != want[user] {
			t.Errorf("%s: outputs %q, want %q", user, got, want[user])
		}
		if wantErr := user == "alice"; wantErr != (len(ev.Errors) == 1 && strings.Contains(ev.Errors[0], "picket.yaml:9:")) || !wantErr && len(ev.Errors) != 0 {
			t.Errorf("%s: errors %q", user, ev.Errors)
		}
		if len(ev.Actions) != 1 || ev.Actions[0].Spec.(*killSpec).User != user {
			t.Errorf("%s: actions %+v", user, ev.Actions)
		}
	}
}

// TestFieldReads: what a rule reads, for skipping rows with unknown
// values: each field of the row, prev.FIELD and kernel.FIELD once, in the
// order written; vars and host are not the row's.
func TestFieldReads(t *testing.T) {
	cfg, err := loadString(t, `
vars: {limit: 100}
rules:
  - name: a
    table: processes
    if: fds >= vars.limit || fds < 0 || prev.fds > 0 || kernel.mem_available > 0 || comm == host.name || prev.fds < fds
`)
	if err != nil {
		t.Fatal(err)
	}
	got := cfg.Rules[0].reads()
	if want := []string{"fds", "prev.fds", "kernel.mem_available", "comm"}; strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("reads %q, want %q", got, want)
	}
}

// TestCaseNamesAndPositions: an unnamed case is named after its place
// (case1, case2…), and every case has its own position in the file.
func TestCaseNamesAndPositions(t *testing.T) {
	cfg, err := loadString(t, `
rules:
  - name: a
    table: process_groups
    cases:
      - if: count >= 50
      - name: named
        if: count >= 20
      - if: count >= 10
`)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range cfg.Rules[0].Cases {
		got = append(got, fmt.Sprintf("%s@%d:%d", c.Name, c.Pos.Line, c.Pos.Col))
	}
	if want := "case1@6:9 named@7:9 case3@9:9"; strings.Join(got, " ") != want {
		t.Errorf("cases %q, want %s", got, want)
	}
}

// TestProtectKey: protect: decodes through the registry's spec; an empty
// one is an empty list, not an error; a second file giving it is refused
// at its key (line and column of "protect:"), not merged; the spec's
// mistakes are one error line each at the value.
func TestProtectKey(t *testing.T) {
	cfg, err := loadString(t, "protect: {exes: [/usr/sbin/mysqld], users: [postgres]}\n")
	if p, ok := cfg.Protect.(*protectSpec); err != nil || !ok || p.Exes[0] != "/usr/sbin/mysqld" || p.Users[0] != "postgres" {
		t.Fatalf("protect: %+v %v", cfg.Protect, err)
	}
	for _, src := range []string{"protect:\n", "protect: {}\n"} {
		cfg, err := loadString(t, src)
		if _, ok := cfg.Protect.(*protectSpec); err != nil || !ok {
			t.Errorf("%q: %+v %v", src, cfg.Protect, err)
		}
	}
	_, err = loadString(t, "protect:\n  exes: [mysqld, postgres]\n  users: [\"\"]\n")
	lines := strings.Split(fmt.Sprint(err), "\n")
	if len(lines) != 3 || !strings.HasSuffix(lines[0], `:2:3: protect: exes: "mysqld" is not absolute`) ||
		!strings.HasSuffix(lines[1], `:2:3: protect: exes: "postgres" is not absolute`) || !strings.HasSuffix(lines[2], ":2:3: protect: users: an empty name") {
		t.Errorf("joined mistakes: %v", err)
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "more.yaml"), []byte("protect: {users: [mail]}\n"), 0o644)
	main := filepath.Join(dir, "picket.yaml")
	os.WriteFile(main, []byte("include: [more.yaml]\nrules: []\nprotect:\n  users: [postgres]\n"), 0o644)
	if _, err := Load(main, testReg); err == nil || !strings.Contains(err.Error(), main+":3:1: protect: given twice (first at "+filepath.Join(dir, "more.yaml")+":1:1") {
		t.Errorf("twice: %v", err)
	}
	reg := testReg
	reg.Protect = nil
	if _, err := LoadBytes("x.yaml", []byte("protect: {}\n"), reg); err == nil || !strings.Contains(err.Error(), "x.yaml:1:1: protect: not available here") {
		t.Errorf("without a registry spec: %v", err)
	}
}

// TestWholeFloatInIntField: a float that is a whole number (after: 2.0)
// is that number; only a fraction is refused.
func TestWholeFloatInIntField(t *testing.T) {
	cfg, err := loadString(t, "rules:\n  - name: a\n    table: process_groups\n    after: 2.0\n")
	if err != nil || cfg.Rules[0].After != 2 {
		t.Fatalf("after: 2.0: %v", err)
	}
}
