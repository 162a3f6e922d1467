package act

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestKindsAndNewSpec(t *testing.T) {
	for _, k := range Kinds() {
		s, ok := NewSpec(k)
		if !ok || s.Kind() != k {
			t.Errorf("NewSpec(%q) = %v, %v", k, s, ok)
		}
		if reflect.ValueOf(s).Kind() != reflect.Pointer {
			t.Errorf("NewSpec(%q) is not a pointer", k)
		}
	}
	if _, ok := NewSpec("reboot"); ok {
		t.Error("NewSpec(reboot) accepted")
	}
}

// TestSpecsHaveYAMLTags: the loader decodes strictly by these names.
func TestSpecsHaveYAMLTags(t *testing.T) {
	for _, k := range Kinds() {
		s, _ := NewSpec(k)
		typ := reflect.TypeOf(s).Elem()
		for i := 0; i < typ.NumField(); i++ {
			if typ.Field(i).Tag.Get("yaml") == "" {
				t.Errorf("%s.%s has no yaml tag", typ.Name(), typ.Field(i).Name)
			}
		}
	}
}

func TestValidate(t *testing.T) {
	cases := []struct {
		name string
		spec Spec
		want string // "" valid, else a substring of the error
	}{
		{"kill example", &KillSpec{User: "{{.user}}", Comm: "imapd", Signal: "TERM", Grace: 5 * time.Second, Then: "KILL", Until: &Until{Below: 1}, MaxTries: 5, MaxTime: 30 * time.Second}, ""},
		{"kill no selector", &KillSpec{Signal: "KILL", OlderThan: time.Hour}, "needs a selector"},
		{"kill templated regex", &KillSpec{CommRegex: "^{{.comm}}$"}, "cannot hold a placeholder"},
		{"kill bad regex", &KillSpec{Cmdline: "("}, "cmdline"},
		{"kill bad signal", &KillSpec{Comm: "x", Signal: "SIGFOO"}, "unknown signal"},
		{"kill bad scope", &KillSpec{Comm: "x", Scope: "session"}, "scope"},
		{"kill until 0", &KillSpec{Comm: "x", Until: &Until{}}, "until.below"},
		{"kill pid list", &KillSpec{PID: "[12 13]"}, ""},
		{"kill bad pid", &KillSpec{PID: "12; rm -rf /"}, "not a process id"},
		{"kill pid placeholder", &KillSpec{PID: "{{.pid}}"}, ""},
		{"archive example", &ArchiveSpec{Path: "/var/mail/{{.user}}", To: "/var/mail/arc", Roots: []string{"/var/mail"}, IfExists: true}, ""},
		{"archive no roots", &ArchiveSpec{Path: "/var/mail/x", To: "/var/mail/arc"}, "roots is required"},
		{"archive relative", &ArchiveSpec{Path: "mail/x", To: "/var/mail/arc", Roots: []string{"/var/mail"}}, "not an absolute path"},
		{"exec example", &ExecSpec{Argv: []string{"/usr/local/bin/notify-ops", "{{.user}}"}, Timeout: 10 * time.Second}, ""},
		{"exec shell line", &ExecSpec{Argv: []string{"notify-ops alice"}}, "absolute path"},
		{"exec templated program", &ExecSpec{Argv: []string{"/usr/bin/{{.comm}}"}}, "argv[0] cannot hold a placeholder"},
		{"throttle example", &ThrottleSpec{Port: 80, Proto: "tcp", Mode: "rate", Rate: "20/second", For: 10 * time.Minute}, ""},
		{"throttle forever", &ThrottleSpec{Port: 80}, "for is required"},
		{"throttle bad rate", &ThrottleSpec{Port: 80, Mode: "rate", Rate: "lots", For: time.Minute}, "rate"},
		{"throttle port", &ThrottleSpec{Port: 70000, For: time.Minute}, "port"},
		{"throttle sshd", &ThrottleSpec{Port: 22, For: time.Minute}, "port 22 is sshd's"},
		{"throttle sshd forced", &ThrottleSpec{Port: 22, For: time.Minute, Force: true}, ""},
		{"kill max_targets", &KillSpec{Comm: "x", MaxTargets: 500}, ""},
		{"kill max_targets negative", &KillSpec{Comm: "x", MaxTargets: -1}, "max_targets"},
		{"kill max_targets huge", &KillSpec{Comm: "x", MaxTargets: 1 << 20}, "max_targets"},
		{"freeze example", &FreezeSpec{PID: "{{.pid}}", Tree: true, For: 2 * time.Minute}, ""},
		{"freeze two pids", &FreezeSpec{PID: "1 2", For: time.Minute}, "one process id"},
		{"sysctl example", &SysctlSpec{Key: "net.ipv4.tcp_max_orphans", Value: "262144"}, ""},
		{"sysctl slash form", &SysctlSpec{Key: "net/ipv4/conf/eth0.100/rp_filter", Value: "1"}, ""},
		{"sysctl escape", &SysctlSpec{Key: "net/../../etc/passwd", Value: "1"}, "not a sysctl name"},
		{"sysctl newline", &SysctlSpec{Key: "vm.swappiness", Value: "1\n2"}, "one non-empty line"},
	}
	for _, c := range cases {
		err := c.spec.Validate()
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s: %v", c.name, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%s: error %v, want it to say %q", c.name, err, c.want)
		}
	}
}

func TestParsers(t *testing.T) {
	if p, err := parsePIDs("[12 13],14"); err != nil || !reflect.DeepEqual(p, []int{12, 13, 14}) {
		t.Errorf("parsePIDs: %v %v", p, err)
	}
	for _, bad := range []string{"", "0", "-1", "abc", "1e3"} {
		if _, err := parsePIDs(bad); err == nil {
			t.Errorf("parsePIDs(%q) accepted", bad)
		}
	}
	for in, want := range map[string]unix.Signal{"TERM": unix.SIGTERM, "sigkill": unix.SIGKILL, "9": unix.SIGKILL, "HUP": unix.SIGHUP} {
		if got, err := parseSignal(in); err != nil || got != want {
			t.Errorf("parseSignal(%q) = %v, %v", in, got, err)
		}
	}
	if n, u, err := parseRate("20/second"); err != nil || n != 20 || u != 1 {
		t.Errorf("parseRate: %d %d %v", n, u, err)
	}
	if p, err := sysctlPath("net.ipv4.tcp_max_orphans"); err != nil || p != "net/ipv4/tcp_max_orphans" {
		t.Errorf("sysctlPath: %q %v", p, err)
	}
}

func TestUnrendered(t *testing.T) {
	if f := unrendered(&ExecSpec{Argv: []string{"/bin/true", "{{.user}}"}}); f != "Argv[1]" {
		t.Errorf("unrendered = %q", f)
	}
	if f := unrendered(&KillSpec{User: "alice", Comm: "imapd"}); f != "" {
		t.Errorf("unrendered = %q", f)
	}
}
