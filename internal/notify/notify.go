// Package notify tells people and other systems about alarms: a log line,
// a mail listing every matching row (PIKT's `output mail $inline`), a JSON
// webhook, or an alert in Prometheus Alertmanager. A Dispatcher sends
// batches and keeps what could not be delivered in an on-disk spool, so a
// mail server that is down when the box is thrashing loses nothing.
//
// Every string in an alarm's row was chosen by whoever started a process;
// each medium escapes it (escape.go) and no value ever reaches a shell, a
// header line or a log line raw.
package notify

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/picket-guard/picket/internal/alarm"
)

// Spec is one output's configuration, written in the config file as
//
//	outputs:
//	  ops:  {mail: {to: [root@localhost], server: "127.0.0.1:25", starttls: auto}}
//	  diag: {log: {path: /var/log/picket/x.log, format: logfmt}}
//	  hook: {webhook: {url: "http://127.0.0.1:9000/x", timeout: 5s, retries: 3}}
//	  am:   {alertmanager: {url: "http://127.0.0.1:9093"}}
//	  ha:   {alertmanager: {urls: ["http://10.0.0.1:9093", "http://10.0.0.2:9093"]}}
//	  err:  {log: {stderr: true, format: json}}
//
// The single key names the kind. Specs are plain structs with yaml tags,
// decoded strictly by the loader. Outputs are fixed destinations: a
// {{placeholder}} in any of their fields is refused, so a process name can
// never choose a log path, a recipient or a URL.
type Spec interface {
	Validate() error
}

// Notifier delivers one rule evaluation's alarms for one output.
type Notifier interface {
	Name() string
	// Notify delivers b. An error wrapped by Permanent will not get better
	// by retrying (a recipient the server refuses, a 400): the Dispatcher
	// drops it instead of spooling it.
	Notify(ctx context.Context, b alarm.Batch) error
}

// Reopener is a Notifier holding a file open: the daemon calls Reopen on
// SIGHUP so logrotate's rename takes effect.
type Reopener interface {
	Reopen() error
}

// Env is what notifiers get from the daemon.
type Env struct {
	// Hostname names this host in mail (HELO, default From) and alerts.
	Hostname string
	// Now is the clock (time.Now when nil).
	Now func() time.Time
	// Logger receives what notifiers have to say about themselves (a
	// discarding logger when nil).
	Logger *slog.Logger
	// StateDir is picket's state directory (the Dispatcher's spool lives
	// under STATE/spool).
	StateDir string
	// Stderr is where `log: {stderr: true}` writes (os.Stderr when nil).
	Stderr io.Writer
}

func (e Env) withDefaults() Env {
	if e.Hostname == "" {
		e.Hostname, _ = os.Hostname()
		if e.Hostname == "" {
			e.Hostname = "localhost"
		}
	}
	if e.Now == nil {
		e.Now = time.Now
	}
	if e.Logger == nil {
		e.Logger = slog.New(slog.DiscardHandler)
	}
	if e.Stderr == nil {
		e.Stderr = os.Stderr
	}
	return e
}

// Permanent marks err as one retrying cannot cure.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return permanentError{err}
}

type permanentError struct{ err error }

func (p permanentError) Error() string { return p.err.Error() }
func (p permanentError) Unwrap() error { return p.err }

// IsPermanent reports whether err (or one it wraps) was marked Permanent.
func IsPermanent(err error) bool {
	var p permanentError
	return errors.As(err, &p)
}

// noPlaceholders refuses {{ in fields that choose a destination: the
// engine renders templates in specs, and a row value must not pick where
// a notification goes.
func noPlaceholders(fields map[string]string) error {
	for k, v := range fields {
		if strings.Contains(v, "{{") {
			return fmt.Errorf("%s: placeholders are not allowed in outputs (%q): a row value must not choose where a notification goes", k, v)
		}
	}
	return nil
}

// deliveryKey carries the spool item's id to a notifier, so a mail keeps
// its Message-ID and a webhook its Idempotency-Key across retries: a
// receiver can drop the duplicate that at-least-once may produce.
type deliveryKey struct{}

// WithDeliveryID returns ctx carrying the id of a delivery.
func WithDeliveryID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, deliveryKey{}, id)
}

// DeliveryID returns the delivery id carried by ctx, if any.
func DeliveryID(ctx context.Context) string {
	id, _ := ctx.Value(deliveryKey{}).(string)
	return id
}

// counts returns how many alarms of b fire and resolve.
func counts(b alarm.Batch) (firing, resolved int) {
	for _, a := range b.Alarms {
		if a.Status == alarm.Resolved {
			resolved++
		} else {
			firing++
		}
	}
	return firing, resolved
}
