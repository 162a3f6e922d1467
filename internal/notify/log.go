package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"syscall"
	"time"

	"github.com/picket-guard/picket/internal/alarm"
)

// LogSpec appends one line per alarm to a file and/or stderr: PIKT's
// `output log "=logdir/ProcNumChkEmergency.log" $inline`.
type LogSpec struct {
	// Path is an absolute file, created 0640 if missing (its directory
	// 0750). A symlink is refused. The file is reopened on SIGHUP.
	Path string `yaml:"path" json:"path,omitempty"`
	// Stderr also (or only) writes to picket's standard error.
	Stderr bool `yaml:"stderr" json:"stderr,omitempty"`
	// Format is logfmt (the default) or json.
	Format string `yaml:"format" json:"format,omitempty"`
}

// Validate checks the spec without touching the file system.
func (s *LogSpec) Validate() error {
	if err := noPlaceholders(map[string]string{"path": s.Path, "format": s.Format}); err != nil {
		return err
	}
	if s.Path == "" && !s.Stderr {
		return fmt.Errorf("log: give a path, stderr: true, or both")
	}
	if s.Path != "" && !filepath.IsAbs(s.Path) {
		return fmt.Errorf("log: path %q is not absolute", s.Path)
	}
	switch s.Format {
	case "", "logfmt", "json":
	default:
		return fmt.Errorf("log: format %q: want logfmt or json", s.Format)
	}
	return nil
}

type logNotifier struct {
	name string
	s    LogSpec
	env  Env

	mu sync.Mutex
	f  *os.File
}

func newLog(name string, s LogSpec, env Env) (*logNotifier, error) {
	return &logNotifier{name: name, s: s, env: env}, nil
}

func (l *logNotifier) Name() string { return l.name }
func (l *logNotifier) spec() Spec   { s := l.s; return &s }

// Notify writes every alarm of b, one line each, in one write per
// destination so lines from concurrent rules do not interleave.
func (l *logNotifier) Notify(ctx context.Context, b alarm.Batch) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	buf := l.format(b, l.env.Now())
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.s.Path != "" {
		if l.f == nil {
			if err := l.open(); err != nil {
				return err
			}
		}
		if _, err := l.f.Write(buf); err != nil {
			// Reopen next time: the file may have been replaced under us.
			l.f.Close()
			l.f = nil
			return fmt.Errorf("write %s: %w", l.s.Path, err)
		}
	}
	if l.s.Stderr {
		if _, err := l.env.Stderr.Write(buf); err != nil {
			return fmt.Errorf("write stderr: %w", err)
		}
	}
	return nil
}

func (l *logNotifier) open() error {
	if err := os.MkdirAll(filepath.Dir(l.s.Path), 0o750); err != nil {
		// Named by the file: an administrator reading "mkdir /var/log/x:
		// not a directory" must know which output could not write.
		return fmt.Errorf("open %s: log directory: %w", l.s.Path, err)
	}
	// O_NOFOLLOW: a symlink planted where the log goes must not make
	// picket (root) append to a file of someone else's choosing.
	f, err := os.OpenFile(l.s.Path, os.O_WRONLY|os.O_APPEND|os.O_CREATE|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0o640)
	if err != nil {
		return fmt.Errorf("open %s: %w", l.s.Path, err)
	}
	l.f = f
	return nil
}

// Reopen closes the file and opens it again by name, for logrotate.
func (l *logNotifier) Reopen() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.s.Path == "" {
		return nil
	}
	if l.f != nil {
		l.f.Close()
		l.f = nil
	}
	return l.open()
}

// Close closes the file.
func (l *logNotifier) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	return err
}

func (l *logNotifier) format(b alarm.Batch, now time.Time) []byte {
	var buf bytes.Buffer
	for _, a := range b.Alarms {
		if l.s.Format == "json" {
			buf.Write(jsonLogLine(a, now))
		} else {
			buf.Write(logfmtLine(a, now))
		}
		buf.WriteByte('\n')
	}
	return buf.Bytes()
}

// logfmtFixed are the keys every logfmt line starts with; a row field of
// the same name is written as row.NAME.
var logfmtFixed = map[string]bool{"ts": true, "host": true, "rule": true, "case": true, "level": true,
	"status": true, "key": true, "msg": true, "table": true}

// logfmtLine renders one alarm as a logfmt line (without the newline):
//
//	ts=… host=moscow rule=ProcNumChkRed case=imapd level=emergency status=firing key="user=alice comm=imapd" msg="…" comm=imapd count=93 user=alice
func logfmtLine(a alarm.Alarm, now time.Time) []byte {
	var b bytes.Buffer
	kv := func(k, v string) {
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(k)
		b.WriteByte('=')
		b.WriteString(logfmtValue(v))
	}
	kv("ts", now.UTC().Format(time.RFC3339))
	kv("host", a.Host)
	kv("rule", a.Rule)
	kv("case", a.Case)
	kv("level", a.Level.String())
	kv("status", string(a.Status))
	if a.Key != "" {
		kv("key", a.Key)
	}
	if a.Message != "" {
		kv("msg", a.Message)
	}
	keys := make([]string, 0, len(a.Row))
	for k := range a.Row {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		name := logfmtKey(k)
		if logfmtFixed[name] {
			name = "row." + name
		}
		kv(name, formatValue(a.Row[k]))
	}
	return b.Bytes()
}

// jsonLogLine renders one alarm as a JSON object on one line: the Alarm's
// own JSON with the time it was written.
func jsonLogLine(a alarm.Alarm, now time.Time) []byte {
	line := struct {
		TS time.Time `json:"ts"`
		alarm.Alarm
	}{now.UTC(), a}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(line); err != nil {
		// A row value JSON cannot hold (a channel, NaN): say so rather
		// than lose the line.
		a.Row = map[string]any{"_unencodable": fmt.Sprint(err)}
		buf.Reset()
		line.Alarm = a
		_ = enc.Encode(line)
	}
	return jsonSafe(bytes.TrimRight(buf.Bytes(), "\n"))
}

var _ io.Closer = (*logNotifier)(nil)
