package notify

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/picket-guard/picket/internal/alarm"
)

// AlertmanagerSpec posts alarms to Prometheus Alertmanager's API v2
// (POST URL/api/v2/alerts).
//
// Alertmanager resolves an alert it has not heard of for its
// resolve_timeout (5m by default): give the rule a `renotify` shorter than
// that, or the alert resolves there while picket still sees it firing.
//
// For a cluster of Alertmanagers (high availability), list them all in
// urls: picket sends every alert to each, as Prometheus does, and the
// cluster's gossip makes one notification of them. Each member has its
// own delivery loop and its own place in the spool (the output named
// NAME@URL in the log), so a member that is down delays nothing sent to
// the others, and gets what it missed once it is back.
type AlertmanagerSpec struct {
	// URL is Alertmanager's base URL, e.g. http://127.0.0.1:9093.
	URL string `yaml:"url" json:"url,omitempty"`
	// URLs are the base URLs of the members of an Alertmanager cluster
	// (instead of url).
	URLs []string `yaml:"urls" json:"urls,omitempty"`
	// Timeout bounds one attempt (default 10s); Retries (default 2, at most
	// 10) more attempts follow a failure, 1s apart and doubling.
	Timeout time.Duration `yaml:"timeout" json:"timeout,omitempty"`
	Retries *int          `yaml:"retries" json:"retries,omitempty"`
	// GeneratorURL links each alert back to picket (its dashboard, say).
	GeneratorURL string `yaml:"generator_url" json:"generator_url,omitempty"`
	// Labels are added to every alert (env: prod, team: mail).
	Labels map[string]string `yaml:"labels" json:"labels,omitempty"`
}

// urls lists the Alertmanagers the spec sends to.
func (s *AlertmanagerSpec) urls() []string {
	if len(s.URLs) > 0 {
		return s.URLs
	}
	return []string{s.URL}
}

// Validate checks the spec.
func (s *AlertmanagerSpec) Validate() error {
	fields := map[string]string{"url": s.URL, "generator_url": s.GeneratorURL}
	for i, u := range s.URLs {
		fields[fmt.Sprintf("urls[%d]", i)] = u
	}
	for k, v := range s.Labels {
		fields["labels."+k] = k + v
	}
	if err := noPlaceholders(fields); err != nil {
		return fmt.Errorf("alertmanager: %w", err)
	}
	switch {
	case s.URL != "" && len(s.URLs) > 0:
		return fmt.Errorf("alertmanager: url and urls both set: give one Alertmanager in url or a cluster's in urls")
	case s.URL == "" && len(s.URLs) == 0:
		return fmt.Errorf("alertmanager: url is required (or urls, for a cluster)")
	}
	seen := map[string]bool{}
	for i, u := range s.urls() {
		if err := checkHTTPURL(u); err != nil {
			if len(s.URLs) > 0 {
				return fmt.Errorf("alertmanager: urls[%d]: %w", i, err)
			}
			return fmt.Errorf("alertmanager: %w", err)
		}
		norm := strings.TrimRight(u, "/")
		if seen[norm] {
			return fmt.Errorf("alertmanager: urls[%d]: %s is listed twice", i, u)
		}
		seen[norm] = true
	}
	if s.GeneratorURL != "" {
		if err := checkHTTPURL(s.GeneratorURL); err != nil {
			return fmt.Errorf("alertmanager: generator_%w", err)
		}
	}
	if s.Timeout < 0 {
		return fmt.Errorf("alertmanager: timeout must be positive")
	}
	if s.Retries != nil && (*s.Retries < 0 || *s.Retries > maxWebhookRetries) {
		return fmt.Errorf("alertmanager: retries %d: want 0 to %d", *s.Retries, maxWebhookRetries)
	}
	for k := range s.Labels {
		if labelName(k) != k {
			return fmt.Errorf("alertmanager: label name %q: want [a-zA-Z_][a-zA-Z0-9_]*, not starting with __", k)
		}
		if fixedLabels[k] {
			return fmt.Errorf("alertmanager: label %q is set by picket", k)
		}
	}
	return nil
}

// labelAliases rename a table's key fields to the label Prometheus's
// rules over picket's metrics give the same thing
// (packaging/prometheus/picket-rules.yml), so the alert picket sends and
// the one Prometheus sends about the same host and check carry the same
// labels: a finding's id is its check.
var labelAliases = map[string]map[string]string{
	"findings": {"id": "check"},
}

// fixedLabels are set from the alarm itself and win over row fields.
var fixedLabels = map[string]bool{"alertname": true, "host": true, "severity": true, "case": true}

type alertmanagerNotifier struct {
	name    string
	s       AlertmanagerSpec
	env     Env
	client  *http.Client
	url     string
	timeout time.Duration
	retries int
	// members are a cluster's Alertmanagers, one notifier each (nil for a
	// single one): the Dispatcher spools and delivers to each on its own.
	members []*alertmanagerNotifier
}

func newAlertmanager(name string, s AlertmanagerSpec, env Env) (*alertmanagerNotifier, error) {
	if len(s.URLs) > 1 {
		a := &alertmanagerNotifier{name: name, s: s, env: env}
		for _, u := range s.URLs {
			one := s
			one.URL, one.URLs = u, nil
			m, err := newAlertmanager(name+"@"+strings.TrimRight(u, "/"), one, env)
			if err != nil {
				return nil, err
			}
			a.members = append(a.members, m)
		}
		return a, nil
	}
	if len(s.URLs) == 1 { // a cluster of one is one Alertmanager, under the output's own name
		s.URL, s.URLs = s.URLs[0], nil
	}
	a := &alertmanagerNotifier{name: name, s: s, env: env, client: httpClient(),
		url: strings.TrimRight(s.URL, "/") + "/api/v2/alerts", timeout: s.Timeout, retries: defaultWebhookRetries}
	if a.timeout == 0 {
		a.timeout = defaultHTTPTimeout
	}
	if s.Retries != nil {
		a.retries = *s.Retries
	}
	return a, nil
}

func (a *alertmanagerNotifier) Name() string { return a.name }
func (a *alertmanagerNotifier) spec() Spec   { s := a.s; return &s }

// targets are the cluster's members, each a Notifier of its own.
func (a *alertmanagerNotifier) targets() []Notifier {
	out := make([]Notifier, len(a.members))
	for i, m := range a.members {
		out[i] = m
	}
	return out
}

// Close drops idle connections.
func (a *alertmanagerNotifier) Close() error {
	for _, m := range a.members {
		m.Close()
	}
	if a.client != nil {
		a.client.CloseIdleConnections()
	}
	return nil
}

// postableAlert is one element of Alertmanager's POST /api/v2/alerts body
// (api/v2/openapi.yaml: postableAlerts).
type postableAlert struct {
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations,omitempty"`
	StartsAt     time.Time         `json:"startsAt,omitzero"`
	EndsAt       time.Time         `json:"endsAt,omitzero"`
	GeneratorURL string            `json:"generatorURL,omitempty"`
}

// Notify posts every alarm of b as one alert; to a cluster, to every
// member in turn (the Dispatcher does not call it so: it sends to each
// member's own loop), failing if any member failed.
func (a *alertmanagerNotifier) Notify(ctx context.Context, b alarm.Batch) error {
	if len(b.Alarms) == 0 {
		return nil
	}
	if len(a.members) > 0 {
		var errs []error
		for _, m := range a.members {
			if err := m.Notify(ctx, b); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", m.s.URL, err))
			}
		}
		joined := errors.Join(errs...)
		for _, err := range errs {
			if !IsPermanent(err) {
				// One member may take it on a retry: not permanent.
				return errors.New(joined.Error())
			}
		}
		return joined
	}
	now := a.env.Now()
	alerts := make([]postableAlert, 0, len(b.Alarms))
	for _, al := range b.Alarms {
		alerts = append(alerts, a.alert(al, now))
	}
	body, err := marshalJSON(alerts)
	if err != nil {
		return Permanent(fmt.Errorf("alertmanager: encode: %w", err))
	}
	return postWithRetries(ctx, a.client, a.url, body, nil, a.timeout, a.retries, defaultWebhookBackoff)
}

// alert turns one alarm into an Alertmanager alert. Its labels are its
// identity there: alertname (the rule), host, severity (the level), case,
// and the row fields that identify the row (those of the alarm's Key, e.g.
// user and comm for process_groups): a count that changes every evaluation
// would make each evaluation a new alert that never resolves. Every other
// string or number field of the row is an annotation. Values are escaped
// like text (no raw control bytes reach a receiver's Slack or mail).
func (a *alertmanagerNotifier) alert(al alarm.Alarm, now time.Time) postableAlert {
	labels := map[string]string{}
	annotations := map[string]string{}
	isKey := keyFields(al)
	names := make([]string, 0, len(al.Row))
	for k := range al.Row {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		v := al.Row[k]
		if !isScalar(v) {
			continue
		}
		val := textSafe(formatValue(v))
		name := labelName(k)
		if alias, ok := labelAliases[al.Table][k]; ok {
			name = alias
		}
		if name == "" || val == "" {
			continue
		}
		if isKey[k] {
			if _, dup := labels[name]; !dup && !fixedLabels[name] {
				labels[name] = val
			}
		} else if _, dup := annotations[name]; !dup && name != "summary" && name != "description" {
			annotations[name] = val
		}
	}
	for _, extra := range []map[string]string{al.Labels, a.s.Labels} {
		for k, v := range extra {
			if name := labelName(k); name != "" && !fixedLabels[name] && v != "" {
				labels[name] = textSafe(v)
			}
		}
	}
	host := al.Host
	if host == "" {
		host = a.env.Hostname
	}
	labels["alertname"] = textSafe(al.Rule)
	labels["host"] = textSafe(host)
	labels["severity"] = al.Level.String()
	if al.Case != "" {
		labels["case"] = textSafe(al.Case)
	}
	msg := al.Message
	if msg == "" {
		msg = alarm.Inline(al.Row)
	}
	annotations["summary"] = fmt.Sprintf("%s on %s: %s", textSafe(al.Rule), textSafe(host), textSafe(msg))
	annotations["description"] = rowLogfmt(al.Row) // already escaped
	p := postableAlert{Labels: labels, Annotations: annotations, StartsAt: al.StartsAt, GeneratorURL: a.s.GeneratorURL}
	if p.StartsAt.IsZero() {
		p.StartsAt = now
	}
	if al.Status == alarm.Resolved {
		p.EndsAt = al.EndsAt
		if p.EndsAt.IsZero() {
			p.EndsAt = now
		}
		if p.EndsAt.Before(p.StartsAt) { // Alertmanager refuses an alert that ends before it starts
			p.StartsAt = p.EndsAt
		}
	}
	return p
}

// keyFields returns the row fields named in the alarm's Key. The rules
// engine writes a Key as "f1=v1 f2=v2" with the values printed by %v; the
// Key is matched against the row exactly, so a value holding " x=" cannot
// add a label. When the Key does not parse that way every string field is
// taken instead (names, not counts).
func keyFields(al alarm.Alarm) map[string]bool {
	out := map[string]bool{}
	names := make([]string, 0, len(al.Row))
	for k := range al.Row {
		names = append(names, k)
	}
	// Longest names first, so "user_id=" is not taken for "user=".
	sort.Slice(names, func(i, j int) bool {
		return len(names[i]) > len(names[j]) || len(names[i]) == len(names[j]) && names[i] < names[j]
	})
	rest := al.Key
	if !strings.Contains(rest, "=") {
		return out // no key fields: the row is the whole table
	}
	for rest != "" {
		matched := false
		for _, k := range names {
			tok := k + "=" + fmt.Sprint(al.Row[k])
			if rest == tok || strings.HasPrefix(rest, tok+" ") {
				out[k] = true
				rest = strings.TrimPrefix(strings.TrimPrefix(rest, tok), " ")
				matched = true
				break
			}
		}
		if !matched {
			out = map[string]bool{}
			for k, v := range al.Row {
				if _, ok := v.(string); ok {
					out[k] = true
				}
			}
			return out
		}
	}
	return out
}

// rowLogfmt renders a row as sorted logfmt pairs.
func rowLogfmt(row map[string]any) string {
	keys := make([]string, 0, len(row))
	for k := range row {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var sb strings.Builder
	for i, k := range keys {
		if i > 0 {
			sb.WriteByte(' ')
		}
		sb.WriteString(logfmtKey(k))
		sb.WriteByte('=')
		sb.WriteString(logfmtValue(formatValue(row[k])))
	}
	return sb.String()
}
