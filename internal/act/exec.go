package act

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"
)

// maxOutput bounds what exec keeps of a program's output for the journal.
const maxOutput = 16 << 10

// exec runs a program as an argv array, never through a shell (safety rule
// 9): the row's values reach it as PICKET_* environment variables and,
// where the configuration put placeholders, as whole arguments.
func (r *Runner) runExec(ctx context.Context, o *op, s *ExecSpec) {
	o.res.Targets = []any{s.Argv[0]}
	if o.dry() {
		o.res.Result = fmt.Sprintf("would run %s with %d arguments (timeout %v)", s.Argv[0], len(s.Argv)-1, s.timeout())
		return
	}
	if !o.intent([]any{s.Argv[0]}, nil, time.Time{}) {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout())
	defer cancel()
	cmd := exec.CommandContext(ctx, s.Argv[0], s.Argv[1:]...)
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
