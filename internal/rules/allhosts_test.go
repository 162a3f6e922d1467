package rules

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const fleetConfig = `hosts:
  moscow: {labels: [mail]}
  nantes: {labels: [nis]}
  web-*: {labels: [web]}
vars:
  limit: {moscow: 20, nantes: twenty}
  mailbox: {label:mail: /var/mail}
outputs:
  log:
    log: {path: "/var/log/picket/{{.vars.mailbox}}.log"}
macros:
  note:
    params: [who]
    do:
      - kill: {user: "{{.who}}", comm: "{{.vars.victim}}"}
rules:
  - name: storm
    table: process_groups
    if: count >= vars.limit
    message: "{{.user}} in {{.vars.mailbox}}"
    then: [log]
  - name: web
    table: process_groups
    hosts: [web-*, "!web-test"]
    vars:
      workers: {web-*: 150, default: 10}
      victim: {label:web: apache2}
    if: count > vars.workers
    then:
      - call: note
        args: {who: "{{.user}}"}
`

// TestCheckAllHosts: the file as each host it names sees it, one host per
// glob and one named nowhere; each mistake at its place, for the hosts it
// is a mistake for, and nothing for the others.
func TestCheckAllHosts(t *testing.T) {
	cfg, err := loadString(t, fleetConfig)
	if err != nil {
		t.Fatalf("the file loads (its mistakes are per host): %v", err)
	}
	views, errs := cfg.CheckAllHosts()
	var as []string
	for _, v := range views {
		as = append(as, v.As)
	}
	if got := strings.Join(as, ", "); got != "moscow, nantes, web-test, hosts matching web-*, any other host" {
		t.Errorf("views: %s", got)
	}
	var got []string
	for _, e := range errs {
		got = append(got, strings.TrimPrefix(e.Error(), filepath.Dir(e.File)+"/"))
	}
	want := []string{
		// outputs.log's path reads vars.mailbox, set only for label:mail.
		"picket.yaml:9:3: host nantes: output log used by rule storm case default: {{.vars.mailbox}} has no value on this host (no default, and it is set only for label:mail)",
		"picket.yaml:9:3: host web-test: output log used by rule storm case default: {{.vars.mailbox}} has no value on this host (no default, and it is set only for label:mail)",
		"picket.yaml:9:3: hosts matching web-*: output log used by rule storm case default: {{.vars.mailbox}} has no value on this host (no default, and it is set only for label:mail)",
		"picket.yaml:9:3: any other host: output log used by rule storm case default: {{.vars.mailbox}} has no value on this host (no default, and it is set only for label:mail)",
		// nantes' limit is a string: the comparison cannot work there.
		`picket.yaml:19:15: host nantes: rule storm case default: if: invalid operation: >= (mismatched types int and string) (here vars.limit = "twenty")`,
		"picket.yaml:19:23: host web-test: rule storm case default: if: vars.limit has no value on this host (no default, and it is set only for moscow; nantes)",
		"picket.yaml:19:23: hosts matching web-*: rule storm case default: if: vars.limit has no value on this host (no default, and it is set only for moscow; nantes)",
		"picket.yaml:19:23: any other host: rule storm case default: if: vars.limit has no value on this host (no default, and it is set only for moscow; nantes)",
		"picket.yaml:20:14: host nantes: rule storm: message: {{.vars.mailbox}} has no value on this host (no default, and it is set only for label:mail)",
		"picket.yaml:20:14: host web-test: rule storm: message: {{.vars.mailbox}} has no value on this host (no default, and it is set only for label:mail)",
		"picket.yaml:20:14: hosts matching web-*: rule storm: message: {{.vars.mailbox}} has no value on this host (no default, and it is set only for label:mail)",
		"picket.yaml:20:14: any other host: rule storm: message: {{.vars.mailbox}} has no value on this host (no default, and it is set only for label:mail)",
		// The web rule's macro reads vars.victim, which web hosts have;
		// web-test is not in the rule's hosts.
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for _, e := range got {
		if strings.Contains(e, "host moscow") {
			t.Errorf("moscow has every value: %s", e)
		}
	}
}

// TestCheckAllHostsMacroVar: a var read in a macro is missing on a host
// the calling rule runs on.
func TestCheckAllHostsMacroVar(t *testing.T) {
	cfg, err := loadString(t, strings.Replace(fleetConfig, "victim: {label:web: apache2}", "victim: {moscow: apache2}", 1))
	if err != nil {
		t.Fatal(err)
	}
	_, errs := cfg.CheckAllHosts()
	n := 0
	for _, e := range errs {
		if strings.Contains(e.Msg, "macro note called from rule web case default: {{.vars.victim}} has no value") {
			n++
			if e.Line != 15 {
				t.Errorf("at line %d, want the macro's kill (15): %s", e.Line, e.Error())
			}
		}
	}
	if n != 1 {
		t.Errorf("%d reports of the macro's var, want 1 (hosts matching web-*; web-test is excluded):\n%v", n, errs)
	}
}

// TestExamplesAllHosts: the shipped examples are right for every host.
func TestExamplesAllHosts(t *testing.T) {
	files, _ := filepath.Glob("../../examples/*.yaml")
	for _, f := range files {
		cfg, err := Load(f, testReg)
		if err != nil {
			t.Fatal(err)
		}
		if _, errs := cfg.CheckAllHosts(); len(errs) > 0 {
			t.Errorf("%s:\n%v", f, errs)
		}
	}
	if _, err := os.Stat("../../examples/procnumchk.yaml"); err != nil {
		t.Fatal(err)
	}
}

func TestGlobExample(t *testing.T) {
	for g, want := range map[string]string{"web-*": "web-x", "db?": "dbx", `a\*b`: "a*b", "*": "x"} {
		if got, ok := globExample(g); !ok || got != want {
			t.Errorf("%q: %q %v", g, got, ok)
		}
	}
	if _, ok := globExample("web[0-9]"); ok {
		t.Errorf("classes are not guessed")
	}
}
