package notify

import (
	"fmt"
	"reflect"
)

// kind is everything picket knows about one output kind; NewSpec, Kinds,
// KindOf, New and the Dispatcher read it, and nothing else names a kind: a
// new one is a file (its spec and its notifier) and one line in kinds.
type kind struct {
	// name is the output's key in the configuration ({mail: {...}}) and in
	// a spooled batch's "kind".
	name string
	// spec returns a zero spec for the loader (or the spool) to decode into.
	spec func() Spec
	// build makes the notifier of a validated spec of this kind.
	build func(name string, s Spec, env Env) (Notifier, error)
	// local outputs write on this host (a log file): their batch is spooled
	// only when the write failed, since spooling every line first would cost
	// two fsyncs per line. A remote one (mail, a webhook) is spooled before
	// it is sent, so a crash mid-delivery loses nothing.
	local bool
}

// kinds lists every output kind, sorted by name.
func kinds() []kind {
	return []kind{
		{name: "alertmanager", spec: func() Spec { return &AlertmanagerSpec{} }, build: building(newAlertmanager)},
		{name: "log", spec: func() Spec { return &LogSpec{} }, build: building(newLog), local: true},
		{name: "mail", spec: func() Spec { return &MailSpec{} }, build: building(newMail)},
		{name: "webhook", spec: func() Spec { return &WebhookSpec{} }, build: building(newWebhook)},
	}
}

// specNotifier is what a kind's constructor returns: a Notifier that says
// which spec it was built from, so the Dispatcher can read its kind's
// properties (local) and spool an inline output with its spec.
type specNotifier interface {
	Notifier
	spec() Spec
}

// building adapts a kind's constructor, which takes its own spec type, to
// kind.build.
func building[S any, P interface {
	*S
	Spec
}, N specNotifier](f func(string, S, Env) (N, error)) func(string, Spec, Env) (Notifier, error) {
	return func(name string, s Spec, env Env) (Notifier, error) {
		p, ok := s.(P)
		if !ok {
			return nil, fmt.Errorf("a %T is not a %T", s, p)
		}
		n, err := f(name, *p, env)
		if err != nil {
			return nil, err
		}
		return n, nil
	}
}

// kindNamed finds the kind called name (nil: none is).
func kindNamed(name string) *kind {
	ks := kinds()
	for i := range ks {
		if ks[i].name == name {
			return &ks[i]
		}
	}
	return nil
}

// kindOfSpec finds the kind whose spec s is (nil for any other Spec).
func kindOfSpec(s Spec) *kind {
	t := reflect.TypeOf(s)
	ks := kinds()
	for i := range ks {
		if reflect.TypeOf(ks[i].spec()) == t {
			return &ks[i]
		}
	}
	return nil
}

// NewSpec returns a fresh zero Spec for kind, for the loader to decode into.
func NewSpec(kind string) (Spec, bool) {
	if k := kindNamed(kind); k != nil {
		return k.spec(), true
	}
	return nil, false
}

// Kinds lists the output kinds NewSpec knows, sorted.
func Kinds() []string {
	ks := kinds()
	out := make([]string, len(ks))
	for i, k := range ks {
		out[i] = k.name
	}
	return out
}

// KindOf names the kind of a Spec made by NewSpec ("" for anything else).
func KindOf(s Spec) string {
	if k := kindOfSpec(s); k != nil {
		return k.name
	}
	return ""
}

// New makes the notifier for the output called name. spec is validated
// again here (the engine may hand a rendered copy).
func New(name string, spec Spec, env Env) (Notifier, error) {
	if spec == nil || reflect.ValueOf(spec).IsNil() {
		return nil, fmt.Errorf("output %s: no spec", name)
	}
	if err := spec.Validate(); err != nil {
		return nil, fmt.Errorf("output %s: %w", name, err)
	}
	k := kindOfSpec(spec)
	if k == nil {
		return nil, fmt.Errorf("output %s: unknown spec type %T", name, spec)
	}
	n, err := k.build(name, spec, env.withDefaults())
	if err != nil {
		return nil, fmt.Errorf("output %s: %w", name, err)
	}
	return n, nil
}
