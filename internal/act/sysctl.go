package act

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// SysctlSpec writes a kernel parameter under /proc/sys, remembering the old
// value for `picket undo`.
//
//	sysctl: {key: net.ipv4.tcp_max_orphans, value: "262144"}
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
// dots, so the slash form (net/ipv4/conf/eth0.100/rp_filter) is accepted
// too: [A-Za-z0-9_@:+.-]+, checked by a loop rather than a regexp compiled
// when any picket command starts.
func sysctlKey(p string) bool {
	if p == "" {
		return false
	}
	for i := 0; i < len(p); i++ {
		switch c := p[i]; {
		case 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z', '0' <= c && c <= '9':
		case strings.IndexByte("_@:+.-", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// sysctlPath turns net.ipv4.tcp_max_orphans into net/ipv4/tcp_max_orphans,
// refusing anything that could step outside /proc/sys.
func sysctlPath(key string) (string, error) {
	sep := "."
	if strings.Contains(key, "/") {
		sep = "/"
	}
	parts := strings.Split(key, sep)
	for _, p := range parts {
		if p == "" || p == "." || p == ".." || !sysctlKey(p) {
			return "", fmt.Errorf("key %q is not a sysctl name", key)
		}
	}
	return strings.Join(parts, "/"), nil
}

// sysctl writes ROOT/proc/sys/KEY, journaling the old value first so that
// `picket undo` can put it back.
func (r *Runner) sysctl(ctx context.Context, o *op, s *SysctlSpec) {
	o.res.Targets = []any{s.Key}
	old, err := r.readSysctl(s.Key)
	if err != nil {
		o.refuse(err)
		return
	}
	if sameSysctl(old, s.Value) {
		o.res.Result = fmt.Sprintf("%s is already %s", s.Key, s.Value)
		return
	}
	if o.dry() {
		o.res.Result = fmt.Sprintf("would set %s from %s to %s", s.Key, old, s.Value)
		return
	}
	if !o.intent([]any{s.Key}, &Undo{Key: s.Key, Old: old, New: s.Value}, time.Time{}) {
		return
	}
	if err := r.writeSysctl(s.Key, s.Value); err != nil {
		o.finish("failed", err, "")
		return
	}
	msg := fmt.Sprintf("set %s from %s to %s", s.Key, old, s.Value)
	if now, err := r.readSysctl(s.Key); err == nil && !sameSysctl(now, s.Value) {
		msg += " (the kernel shows " + now + ")"
	}
	o.finish(msg, nil, "")
}

// restoreSysctl is a sysctl's revert: the old value goes back only while
// the parameter still holds what picket wrote; someone else's later change
// is left alone.
func (r *Runner) restoreSysctl(a Action) (string, error) {
	u := a.Undo
	cur, err := r.readSysctl(u.Key)
	if err != nil {
		return "", err
	}
	if sameSysctl(cur, u.Old) {
		return fmt.Sprintf("%s is %s already", u.Key, u.Old), nil
	}
	if !sameSysctl(cur, u.New) {
		return "", fmt.Errorf("%s is now %s, not the %s picket set: left alone", u.Key, cur, u.New)
	}
	if err := r.writeSysctl(u.Key, u.Old); err != nil {
		return "", err
	}
	return fmt.Sprintf("restored %s from %s to %s", u.Key, u.New, u.Old), nil
}

func (r *Runner) sysctlDir() string { return filepath.Join(r.root, "proc", "sys") }

func (r *Runner) readSysctl(key string) (string, error) {
	rel, err := sysctlPath(key)
	if err != nil {
		return "", err
	}
	f, err := r.openBeneath(r.sysctlDir(), rel, unix.O_RDONLY, 0)
	if err != nil {
		return "", fmt.Errorf("sysctl %s: %w", key, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, 64<<10))
	if err != nil {
		return "", fmt.Errorf("read sysctl %s: %w", key, err)
	}
	return strings.TrimSpace(string(b)), nil
}

func (r *Runner) writeSysctl(key, value string) error {
	rel, err := sysctlPath(key)
	if err != nil {
		return err
	}
	// O_TRUNC matters for a fixture tree's plain files; /proc/sys ignores it.
	f, err := r.openBeneath(r.sysctlDir(), rel, unix.O_WRONLY|unix.O_TRUNC, 0)
	if err != nil {
		return fmt.Errorf("sysctl %s: %w", key, err)
	}
	_, werr := f.WriteString(value + "\n")
	cerr := f.Close()
	if werr != nil {
		return fmt.Errorf("write sysctl %s: %w", key, werr)
	}
	if cerr != nil {
		return fmt.Errorf("write sysctl %s: %w", key, cerr)
	}
	return nil
}

// sameSysctl compares values as the kernel prints them: fields separated
// by tabs (tcp_mem) compare equal to the same fields separated by spaces.
func sameSysctl(a, b string) bool {
	return strings.Join(strings.Fields(a), " ") == strings.Join(strings.Fields(b), " ")
}
