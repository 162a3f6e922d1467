package act

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Spec is one action's configuration, as written in a rule's `then:` list
// ({KIND: {...}}; each kind's spec type shows its form). Every kind is
// described once, in kinds.go.
//
// String fields may hold text/template placeholders that the rules engine
// renders before calling the Runner; Validate accepts them unrendered (the
// loader calls it on the configuration), and the Runner validates again
// after rendering, where a placeholder left over is an error. Where a
// placeholder would turn untrusted text into syntax (a regular expression,
// the program exec runs), Validate refuses it.
type Spec interface {
	// Kind is the kind's name, the key of its descriptor in kinds.go.
	Kind() string
	Validate() error
}

// maxFor bounds the duration of a timed action: each must end by itself.
const maxFor = 24 * time.Hour

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
