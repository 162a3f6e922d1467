package act

import (
	"errors"
	"fmt"
	"path"
	"regexp"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Spec is one action's configuration, as written in a rule's `then:` list:
//
//   - kill:     {user: "{{.user}}", comm: imapd, signal: TERM, grace: 5s, then: KILL, until: {below: 1}, max_tries: 5, max_time: 30s}
//   - archive:  {path: "/var/mail/{{.user}}", to: /var/mail/arc, roots: [/var/mail], if_exists: true}
//   - exec:     {argv: [/usr/local/bin/notify-ops, "{{.user}}"], timeout: 10s}
//   - throttle: {port: 80, proto: tcp, mode: drop, rate: "20/second", for: 10m}
//   - freeze:   {pid: "{{.pid}}", tree: true, for: 2m}
//   - sysctl:   {key: net.ipv4.tcp_max_orphans, value: "262144"}
//
// String fields may hold text/template placeholders that the rules engine
// renders before calling the Runner; Validate accepts them unrendered (the
// loader calls it on the configuration), and the Runner validates again
// after rendering, where a placeholder left over is an error. Where a
// placeholder would turn untrusted text into syntax (a regular expression,
// the program exec runs), Validate refuses it.
type Spec interface {
	Kind() string
	Validate() error
}

// NewSpec returns a fresh zero Spec for kind, for the loader to decode into.
func NewSpec(kind string) (Spec, bool) {
	switch kind {
	case "kill":
		return &KillSpec{}, true
	case "archive":
		return &ArchiveSpec{}, true
	case "exec":
		return &ExecSpec{}, true
	case "throttle":
		return &ThrottleSpec{}, true
	case "freeze":
		return &FreezeSpec{}, true
	case "sysctl":
		return &SysctlSpec{}, true
	}
	return nil, false
}

// Kinds lists the action kinds NewSpec knows.
func Kinds() []string {
	return []string{"archive", "exec", "freeze", "kill", "sysctl", "throttle"}
}

// maxFor bounds throttles and freezes: both must end by themselves.
const maxFor = 24 * time.Hour

// KillSpec signals the processes its selectors pick, the way an administrator
// would by hand: optionally warn, send Signal, wait Grace, send Then to what
// is left; with Until, re-scan and repeat (PIKT's kill_user_proc loop) until
// fewer than Until.Below match, at most MaxTries rounds within MaxTime.
type KillSpec struct {
	// Selectors; every one given must match. At least one of user, comm,
	// comm_regex, cmdline, exe, cgroup, pid and ppid is required.
	User      string `yaml:"user" json:"user,omitempty"`             // name or uid (effective uid, as ps shows)
	Comm      string `yaml:"comm" json:"comm,omitempty"`             // exact, as /proc/PID/comm (15 bytes at most)
	CommRegex string `yaml:"comm_regex" json:"comm_regex,omitempty"` // Go regexp, unanchored; no placeholders
	Cmdline   string `yaml:"cmdline" json:"cmdline,omitempty"`       // Go regexp over argv joined by spaces; no placeholders
	Exe       string `yaml:"exe" json:"exe,omitempty"`               // exact target of /proc/PID/exe
	Cgroup    string `yaml:"cgroup" json:"cgroup,omitempty"`         // cgroup path: that cgroup and the ones below it
	PID       string `yaml:"pid" json:"pid,omitempty"`               // a pid or a list ("12 13", "[12 13]", "12,13"), usually "{{.pid}}"
	PPID      string `yaml:"ppid" json:"ppid,omitempty"`             // parent pid
	// Youngest keeps only the N most recently started matches (0: all).
	Youngest int `yaml:"youngest" json:"youngest,omitempty"`
	// OlderThan keeps only processes started at least this long ago.
	OlderThan time.Duration `yaml:"older_than" json:"older_than,omitempty"`

	Signal string `yaml:"signal" json:"signal,omitempty"` // default TERM
	// Scope is what one match stands for: "process" (default), "group" (its
	// process group) or "cgroup" (every process of its cgroup). A group or
	// cgroup holding a protected process is refused whole.
	Scope string `yaml:"scope" json:"scope,omitempty"`
	// Warn: call the runner's Warn hook with the targets, wait this long,
	// then select again before the first signal.
	Warn time.Duration `yaml:"warn" json:"warn,omitempty"`
	// Grace is how long to wait for the targets to exit after Signal before
	// sending Then (default 5s when Then is set, 1s otherwise).
	Grace time.Duration `yaml:"grace" json:"grace,omitempty"`
	Then  string        `yaml:"then" json:"then,omitempty"` // escalation signal, usually KILL
	Until *Until        `yaml:"until" json:"until,omitempty"`
	// MaxTries bounds the rounds of an Until loop (default 5); MaxTime its
	// duration (default 30s).
	MaxTries int           `yaml:"max_tries" json:"max_tries,omitempty"`
	MaxTime  time.Duration `yaml:"max_time" json:"max_time,omitempty"`
}

// Until is the stop condition of a kill loop: stop once fewer than Below
// processes match (Below: 1 is "until none remain", the seed's loop).
type Until struct {
	Below int `yaml:"below" json:"below"`
}

func (*KillSpec) Kind() string { return "kill" }

func (s *KillSpec) Validate() error {
	var errs []error
	if s.User == "" && s.Comm == "" && s.CommRegex == "" && s.Cmdline == "" && s.Exe == "" &&
		s.Cgroup == "" && s.PID == "" && s.PPID == "" {
		errs = append(errs, errors.New("kill: needs a selector (user, comm, comm_regex, cmdline, exe, cgroup, pid or ppid); it would match every process"))
	}
	for _, f := range []struct{ name, v string }{{"comm_regex", s.CommRegex}, {"cmdline", s.Cmdline}} {
		if f.v == "" {
			continue
		}
		if hasPlaceholder(f.v) {
			errs = append(errs, fmt.Errorf("kill: %s cannot hold a placeholder: process and user names are untrusted and would become regular-expression syntax (use comm, user or pid)", f.name))
		} else if _, err := regexp.Compile(f.v); err != nil {
			errs = append(errs, fmt.Errorf("kill: %s: %w", f.name, err))
		}
	}
	if s.Exe != "" && !hasPlaceholder(s.Exe) && !path.IsAbs(s.Exe) {
		errs = append(errs, fmt.Errorf("kill: exe %q is not an absolute path", s.Exe))
	}
	if s.Cgroup != "" && !hasPlaceholder(s.Cgroup) && !strings.HasPrefix(s.Cgroup, "/") {
		errs = append(errs, fmt.Errorf("kill: cgroup %q must start with /", s.Cgroup))
	}
	for _, f := range []struct{ name, v string }{{"pid", s.PID}, {"ppid", s.PPID}} {
		if f.v != "" && !hasPlaceholder(f.v) {
			if _, err := parsePIDs(f.v); err != nil {
				errs = append(errs, fmt.Errorf("kill: %s: %w", f.name, err))
			}
		}
	}
	if s.Youngest < 0 {
		errs = append(errs, errors.New("kill: youngest must not be negative"))
	}
	if s.OlderThan < 0 || s.Warn < 0 || s.Grace < 0 || s.MaxTime < 0 || s.MaxTries < 0 {
		errs = append(errs, errors.New("kill: durations and max_tries must not be negative"))
	}
	for _, f := range []struct{ name, v string }{{"signal", s.Signal}, {"then", s.Then}} {
		if f.v != "" {
			if _, err := parseSignal(f.v); err != nil {
				errs = append(errs, fmt.Errorf("kill: %s: %w", f.name, err))
			}
		}
	}
	switch s.Scope {
	case "", "process", "group", "cgroup":
	default:
		errs = append(errs, fmt.Errorf("kill: scope %q: want process, group or cgroup", s.Scope))
	}
	if s.Until != nil && s.Until.Below < 1 {
		errs = append(errs, errors.New("kill: until.below must be at least 1 (1: until none remain)"))
	}
	return errors.Join(errs...)
}

func (s *KillSpec) signals() (sig, then unix.Signal) {
	sig, _ = parseSignal(s.Signal)
	if s.Signal == "" {
		sig = unix.SIGTERM
	}
	if s.Then != "" {
		then, _ = parseSignal(s.Then)
	}
	return sig, then
}

func (s *KillSpec) grace() time.Duration {
	switch {
	case s.Grace > 0:
		return s.Grace
	case s.Then != "":
		return 5 * time.Second
	}
	return time.Second
}

func (s *KillSpec) bounds() (tries int, max time.Duration) {
	tries, max = 1, 0
	if s.Until != nil {
		tries, max = 5, 30*time.Second
	}
	if s.MaxTries > 0 {
		tries = s.MaxTries
	}
	if s.MaxTime > 0 {
		max = s.MaxTime
	}
	return tries, max
}

// ArchiveSpec copies Path into the directory To as NAME.TIMESTAMP, keeping
// mode, owner and times; the seed's `cp -p /var/mail/USER /var/mail/arc/USER.NOW`.
// Both must lie under one of Roots, reached without following a symlink.
type ArchiveSpec struct {
	Path  string   `yaml:"path" json:"path"`
	To    string   `yaml:"to" json:"to"`
	Roots []string `yaml:"roots" json:"roots"`
	// IfExists: a missing Path is "nothing to archive", not an error (the
	// seed's `if -e`).
	IfExists bool `yaml:"if_exists" json:"if_exists,omitempty"`
}

func (*ArchiveSpec) Kind() string { return "archive" }

func (s *ArchiveSpec) Validate() error {
	var errs []error
	if len(s.Roots) == 0 {
		errs = append(errs, errors.New("archive: roots is required (the directories archive may read from and write to)"))
	}
	for _, r := range s.Roots {
		if !path.IsAbs(r) || hasDotDot(r) {
			errs = append(errs, fmt.Errorf("archive: root %q must be an absolute path without . or .. components", r))
		}
	}
	for _, f := range []struct{ name, v string }{{"path", s.Path}, {"to", s.To}} {
		if f.v == "" {
			errs = append(errs, fmt.Errorf("archive: %s is required", f.name))
		} else if !strings.HasPrefix(f.v, "/") {
			errs = append(errs, fmt.Errorf("archive: %s %q is not an absolute path", f.name, f.v))
		}
	}
	return errors.Join(errs...)
}

// ExecSpec runs a program: Argv[0] is an absolute path fixed in the
// configuration, never a shell command line. The alarm's row reaches it as
// PICKET_* environment variables (and as arguments where Argv uses
// placeholders).
type ExecSpec struct {
	Argv    []string      `yaml:"argv" json:"argv"`
	Timeout time.Duration `yaml:"timeout" json:"timeout,omitempty"` // default 30s
}

func (*ExecSpec) Kind() string { return "exec" }

func (s *ExecSpec) Validate() error {
	if len(s.Argv) == 0 {
		return errors.New("exec: argv is required")
	}
	if hasPlaceholder(s.Argv[0]) {
		return errors.New("exec: argv[0] cannot hold a placeholder: the program to run must be fixed in the configuration")
	}
	if !path.IsAbs(s.Argv[0]) {
		return fmt.Errorf("exec: argv[0] %q must be an absolute path (no shell, no PATH search)", s.Argv[0])
	}
	for i, a := range s.Argv {
		if strings.IndexByte(a, 0) >= 0 {
			return fmt.Errorf("exec: argv[%d] holds a NUL byte", i)
		}
	}
	if s.Timeout < 0 {
		return errors.New("exec: timeout must not be negative")
	}
	return nil
}

func (s *ExecSpec) timeout() time.Duration {
	if s.Timeout > 0 {
		return s.Timeout
	}
	return 30 * time.Second
}

// ThrottleSpec drops (mode drop) or rate-limits (mode rate: packets opening
// a connection beyond Rate are dropped) new connections to a local port for
// For, keeping established ones: seed 004's `iptables -A INPUT -p tcp --dport
// 80 -j DROP`, made to end by itself. A TCP connection is new when conntrack
// says so and the packet is a bare SYN; for UDP, conntrack's word alone
// decides, so flows it did not track before the throttle count as new.
type ThrottleSpec struct {
	Port  int           `yaml:"port" json:"port"`
	Proto string        `yaml:"proto" json:"proto,omitempty"` // tcp (default) or udp
	Mode  string        `yaml:"mode" json:"mode,omitempty"`   // drop (default) or rate
	Rate  string        `yaml:"rate" json:"rate,omitempty"`   // N/second|minute|hour, for mode rate
	Burst int           `yaml:"burst" json:"burst,omitempty"` // packets allowed above Rate in a burst (default 5)
	For   time.Duration `yaml:"for" json:"for"`
}

func (*ThrottleSpec) Kind() string { return "throttle" }

func (s *ThrottleSpec) Validate() error {
	var errs []error
	if s.Port < 1 || s.Port > 65535 {
		errs = append(errs, fmt.Errorf("throttle: port %d out of 1..65535", s.Port))
	}
	switch s.Proto {
	case "", "tcp", "udp":
	default:
		errs = append(errs, fmt.Errorf("throttle: proto %q: want tcp or udp", s.Proto))
	}
	switch s.Mode {
	case "", "drop":
		if s.Rate != "" {
			errs = append(errs, errors.New("throttle: rate is only for mode rate"))
		}
	case "rate":
		if _, _, err := parseRate(s.Rate); err != nil {
			errs = append(errs, fmt.Errorf("throttle: %w", err))
		}
	default:
		errs = append(errs, fmt.Errorf("throttle: mode %q: want drop or rate", s.Mode))
	}
	if s.Burst < 0 {
		errs = append(errs, errors.New("throttle: burst must not be negative"))
	}
	if s.For <= 0 || s.For > maxFor {
		errs = append(errs, fmt.Errorf("throttle: for is required, at most %v (a throttle must end by itself)", maxFor))
	}
	return errors.Join(errs...)
}

func (s *ThrottleSpec) proto() string {
	if s.Proto == "" {
		return "tcp"
	}
	return s.Proto
}

func (s *ThrottleSpec) mode() string {
	if s.Mode == "" {
		return "drop"
	}
	return s.Mode
}

// FreezeSpec stops a process (and with Tree its descendants) for For, then
// thaws it: the cgroup freezer where the tree has a cgroup of its own, else
// SIGSTOP and SIGCONT.
type FreezeSpec struct {
	PID  string        `yaml:"pid" json:"pid"`
	Tree bool          `yaml:"tree" json:"tree,omitempty"`
	For  time.Duration `yaml:"for" json:"for"`
}

func (*FreezeSpec) Kind() string { return "freeze" }

func (s *FreezeSpec) Validate() error {
	var errs []error
	if s.PID == "" {
		errs = append(errs, errors.New("freeze: pid is required"))
	} else if !hasPlaceholder(s.PID) {
		if pids, err := parsePIDs(s.PID); err != nil || len(pids) != 1 {
			errs = append(errs, fmt.Errorf("freeze: pid %q: want one process id", s.PID))
		}
	}
	if s.For <= 0 || s.For > maxFor {
		errs = append(errs, fmt.Errorf("freeze: for is required, at most %v (a freeze must end by itself)", maxFor))
	}
	return errors.Join(errs...)
}

// SysctlSpec writes a kernel parameter under /proc/sys, remembering the old
// value for `picket undo`.
type SysctlSpec struct {
	Key   string `yaml:"key" json:"key"`
	Value string `yaml:"value" json:"value"`
}

func (*SysctlSpec) Kind() string { return "sysctl" }

func (s *SysctlSpec) Validate() error {
	if !hasPlaceholder(s.Key) {
		if _, err := sysctlPath(s.Key); err != nil {
			return fmt.Errorf("sysctl: %w", err)
		}
	}
	if s.Value == "" || len(s.Value) > 4096 || strings.ContainsAny(s.Value, "\x00\n") {
		return errors.New("sysctl: value must be one non-empty line of at most 4096 bytes")
	}
	return nil
}

// sysctlKey is one component of a sysctl name; interface names may hold
// dots, so the slash form (net/ipv4/conf/eth0.100/rp_filter) is accepted too.
var sysctlKey = regexp.MustCompile(`^[A-Za-z0-9_@:+.-]+$`)

// sysctlPath turns net.ipv4.tcp_max_orphans into net/ipv4/tcp_max_orphans,
// refusing anything that could step outside /proc/sys.
func sysctlPath(key string) (string, error) {
	sep := "."
	if strings.Contains(key, "/") {
		sep = "/"
	}
	parts := strings.Split(key, sep)
	for _, p := range parts {
		if p == "" || p == "." || p == ".." || !sysctlKey.MatchString(p) {
			return "", fmt.Errorf("key %q is not a sysctl name", key)
		}
	}
	return strings.Join(parts, "/"), nil
}

func hasPlaceholder(s string) bool { return strings.Contains(s, "{{") }

// hasDotDot reports a "." or ".." component or an empty one (a//b): such
// paths are refused rather than cleaned, since a user name of "../.." is
// an attack, not a typo.
func hasDotDot(p string) bool {
	for _, c := range strings.Split(strings.TrimPrefix(p, "/"), "/") {
		if c == "." || c == ".." {
			return true
		}
	}
	return strings.Contains(p, "//")
}

// parsePIDs reads "12", "12 13", "12,13" or "[12 13]" (a list rendered by a
// template). Every pid must be a positive decimal number.
func parsePIDs(s string) ([]int, error) {
	f := strings.FieldsFunc(s, func(r rune) bool { return r == ' ' || r == ',' || r == '[' || r == ']' || r == '\t' })
	if len(f) == 0 {
		return nil, fmt.Errorf("%q holds no process id", s)
	}
	pids := make([]int, 0, len(f))
	for _, x := range f {
		n, err := strconv.Atoi(x)
		if err != nil || n <= 0 || n > 1<<22 {
			return nil, fmt.Errorf("%q is not a process id", x)
		}
		pids = append(pids, n)
	}
	return pids, nil
}

// parseSignal accepts TERM, SIGTERM, term or 15.
func parseSignal(s string) (unix.Signal, error) {
	if n, err := strconv.Atoi(s); err == nil {
		if n < 1 || n > 64 {
			return 0, fmt.Errorf("signal %d out of range", n)
		}
		return unix.Signal(n), nil
	}
	name := strings.ToUpper(s)
	if !strings.HasPrefix(name, "SIG") {
		name = "SIG" + name
	}
	sig := unix.SignalNum(name)
	if sig == 0 {
		return 0, fmt.Errorf("unknown signal %q", s)
	}
	return sig, nil
}

func signalName(sig unix.Signal) string {
	return strings.TrimPrefix(unix.SignalName(sig), "SIG")
}

// parseRate reads nftables-style "20/second" (also minute, hour, day).
func parseRate(s string) (uint64, uint64, error) {
	n, unit, ok := strings.Cut(s, "/")
	v, err := strconv.ParseUint(n, 10, 32)
	if !ok || err != nil || v == 0 {
		return 0, 0, fmt.Errorf("rate %q: want N/second, N/minute, N/hour or N/day", s)
	}
	switch unit {
	case "second", "s":
		return v, 1, nil
	case "minute", "m":
		return v, 60, nil
	case "hour", "h":
		return v, 3600, nil
	case "day", "d":
		return v, 86400, nil
	}
	return 0, 0, fmt.Errorf("rate %q: unit %q: want second, minute, hour or day", s, unit)
}
