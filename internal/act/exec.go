package act

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"path"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"
)

// ExecSpec runs a program: Argv[0] is an absolute path fixed in the
// configuration, never a shell command line. The alarm's row reaches it as
// PICKET_* environment variables (and as arguments where Argv uses
// placeholders).
//
//	exec: {argv: [/usr/local/bin/notify-ops, "{{.user}}"], timeout: 10s}
type ExecSpec struct {
	Argv    []string      `yaml:"argv" json:"argv"`
	Timeout time.Duration `yaml:"timeout" json:"timeout,omitempty"` // default 30s

	// leading[i] says Argv[i] began with a placeholder in the
	// configuration (MarkTemplates, before rendering): its first byte is
	// then the row's, and a process named "--version" or "-f/etc/shadow"
	// would become an option of the program.
	leading []bool `yaml:"-" json:"-"`
}

// MarkTemplates notes which arguments begin with a placeholder. The rules
// engine calls it on its copy of the spec just before it renders it: after
// rendering, "-t" written in the configuration and "-t" taken from a
// process name look the same.
func (s *ExecSpec) MarkTemplates() {
	s.leading = make([]bool, len(s.Argv))
	for i, a := range s.Argv {
		s.leading[i] = strings.HasPrefix(a, "{{")
	}
}

// optionLike refuses a rendered argument that begins with "-" where a
// placeholder began it, unless a "--" written in the configuration comes
// before it (getopt's end of options: everything after it is an operand).
// Refusing, not quoting: there is no quoting an option away, and a
// program that takes no "--" cannot be told the value is not one.
func (s *ExecSpec) optionLike() error {
	for i := 1; i < len(s.Argv) && i < len(s.leading); i++ {
		a := s.Argv[i]
		if !s.leading[i] && a == "--" {
			return nil
		}
		if s.leading[i] && strings.HasPrefix(a, "-") {
			return fmt.Errorf("exec: argv[%d] %q comes from the row and begins with \"-\": the program would read it as an option (put \"--\" in argv before the placeholder to pass such values)", i, a)
		}
	}
	return nil
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

// maxOutput bounds what exec keeps of a program's output for the journal.
const maxOutput = 16 << 10

// exec runs a program as an argv array, never through a shell (safety rule
// 9): the row's values reach it as PICKET_* environment variables and,
// where the configuration put placeholders, as whole arguments.
func (r *Runner) runExec(ctx context.Context, o *op, s *ExecSpec) {
	o.res.Targets = []any{s.Argv[0]}
	if err := s.optionLike(); err != nil {
		o.refuse(err)
		return
	}
	if o.dry() {
		o.res.Result = fmt.Sprintf("would run %s with %d arguments (timeout %v)", s.Argv[0], len(s.Argv)-1, s.timeout())
		return
	}
	if !o.intent([]any{s.Argv[0]}, nil, time.Time{}) {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout())
	defer cancel()
	// The program starts through picket's own binary (execShim), which
	// takes picket's privileges off before it executes argv.
	cmd := exec.CommandContext(ctx, "/proc/self/exe", s.Argv...)
	cmd.Args[0] = shimName
	cmd.Env = execEnv(o.req, o.id)
	cmd.Dir = "/"
	out := &capped{max: maxOutput}
	cmd.Stdout, cmd.Stderr = out, out
	// Its own process group, so a timeout ends whatever it started too.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 2 * time.Second
	start := time.Now()
	err := cmd.Run()
	took := time.Since(start).Round(time.Millisecond)
	var ee *exec.ExitError
	switch {
	case err == nil:
		o.finish(fmt.Sprintf("%s exited 0 after %v", s.Argv[0], took), nil, out.String())
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		o.finish(fmt.Sprintf("%s killed after the %v timeout", s.Argv[0], s.timeout()), fmt.Errorf("timeout after %v", s.timeout()), out.String())
	case errors.As(err, &ee):
		o.finish(fmt.Sprintf("%s %v after %v", s.Argv[0], ee.ProcessState, took), err, out.String())
	default:
		o.finish("failed to start "+s.Argv[0], err, out.String())
	}
}

// execEnv is a minimal environment (picket's own is not passed on) plus
// PICKET_ID, PICKET_HOST, PICKET_RULE, PICKET_CASE and one PICKET_KEY per
// row field (key upper-cased, other than [A-Z0-9_] turned to _).
func execEnv(req Request, id string) []string {
	env := []string{
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"LC_ALL=C.UTF-8",
		"PICKET_ID=" + id,
		"PICKET_HOST=" + envValue(req.Host),
		"PICKET_RULE=" + envValue(req.Rule),
		"PICKET_CASE=" + envValue(req.Case),
	}
	keys := make([]string, 0, len(req.Row))
	for k := range req.Row {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		env = append(env, "PICKET_"+envName(k)+"="+envValue(fmt.Sprint(req.Row[k])))
	}
	return env
}

func envName(k string) string {
	b := []byte(strings.ToUpper(k))
	for i, c := range b {
		if !(c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
			b[i] = '_'
		}
	}
	return string(b)
}

// envValue drops NUL bytes, the one byte an environment cannot carry.
func envValue(v string) string { return strings.ReplaceAll(v, "\x00", "") }

// capped keeps the first max bytes written and counts the rest.
type capped struct {
	mu      sync.Mutex
	max     int
	buf     bytes.Buffer
	dropped int
}

func (c *capped) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	room := c.max - c.buf.Len()
	if room > len(p) {
		room = len(p)
	}
	if room > 0 {
		c.buf.Write(p[:room])
	}
	c.dropped += len(p) - max(room, 0)
	return len(p), nil
}

func (c *capped) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.dropped > 0 {
		return fmt.Sprintf("%s\n[%d more bytes not kept]", c.buf.String(), c.dropped)
	}
	return c.buf.String()
}
