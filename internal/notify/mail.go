package notify

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/mail"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	gomail "github.com/wneessen/go-mail"

	"github.com/picket-guard/picket/internal/alarm"
)

// MailSpec sends one mail per rule evaluation listing every alarm row:
// PIKT's `output mail $inline`.
type MailSpec struct {
	To []string `yaml:"to" json:"to"`
	// From defaults to picket@HOSTNAME.
	From string `yaml:"from" json:"from,omitempty"`
	// Server is host:port (default localhost:25).
	Server string `yaml:"server" json:"server,omitempty"`
	// StartTLS is auto (use it when the server offers it; the default,
	// also spelled opportunistic), required (also mandatory) or none.
	StartTLS string `yaml:"starttls" json:"starttls,omitempty"`
	// ImplicitTLS speaks TLS from the first byte (port 465, "SMTPS").
	ImplicitTLS bool `yaml:"implicit_tls" json:"implicit_tls,omitempty"`
	// TLSSkipVerify skips certificate verification; only for a server on
	// loopback (a test relay with a self-signed certificate).
	TLSSkipVerify bool `yaml:"tls_skip_verify" json:"tls_skip_verify,omitempty"`
	// TLSCAFile is a PEM bundle of CAs to trust instead of the system's.
	TLSCAFile string `yaml:"tls_ca_file" json:"tls_ca_file,omitempty"`
	// User and Password (or PasswordFile, whose first line is read when the
	// output is made) enable SMTP AUTH. Credentials are never sent in the
	// clear except to a loopback server.
	User         string `yaml:"user" json:"user,omitempty"`
	Password     string `yaml:"password" json:"-"`
	PasswordFile string `yaml:"password_file" json:"password_file,omitempty"`
	// Auth is plain (the default) or login.
	Auth string `yaml:"auth" json:"auth,omitempty"`
	// Timeout bounds one delivery: connect, dialogue and data (default 30s).
	Timeout time.Duration `yaml:"timeout" json:"timeout,omitempty"`
}

const defaultMailTimeout = 30 * time.Second

// Validate checks the spec without connecting or reading files.
func (s *MailSpec) Validate() error {
	fields := map[string]string{"from": s.From, "server": s.Server, "starttls": s.StartTLS, "tls_ca_file": s.TLSCAFile,
		"user": s.User, "password_file": s.PasswordFile, "auth": s.Auth}
	for i, to := range s.To {
		fields["to["+strconv.Itoa(i)+"]"] = to
	}
	if err := noPlaceholders(fields); err != nil {
		return fmt.Errorf("mail: %w", err)
	}
	if len(s.To) == 0 {
		return fmt.Errorf("mail: to: give at least one recipient")
	}
	for _, to := range s.To {
		if _, err := mail.ParseAddress(to); err != nil {
			return fmt.Errorf("mail: to: %q: %v", to, err)
		}
	}
	if s.From != "" {
		if _, err := mail.ParseAddress(s.From); err != nil {
			return fmt.Errorf("mail: from: %q: %v", s.From, err)
		}
	}
	host, _, err := s.hostPort()
	if err != nil {
		return fmt.Errorf("mail: server: %v", err)
	}
	policy, err := s.policy()
	if err != nil {
		return fmt.Errorf("mail: %v", err)
	}
	if s.TLSSkipVerify && !isLoopback(host) {
		return fmt.Errorf("mail: tls_skip_verify is only allowed for a server on loopback, not %q", host)
	}
	if s.TLSCAFile != "" && !strings.HasPrefix(s.TLSCAFile, "/") {
		return fmt.Errorf("mail: tls_ca_file %q is not absolute", s.TLSCAFile)
	}
	if s.Password != "" && s.PasswordFile != "" {
		return fmt.Errorf("mail: give password or password_file, not both")
	}
	if s.User == "" && (s.Password != "" || s.PasswordFile != "") {
		return fmt.Errorf("mail: a password needs a user")
	}
	if s.User != "" && s.Password == "" && s.PasswordFile == "" {
		return fmt.Errorf("mail: user %q needs password or password_file", s.User)
	}
	switch s.Auth {
	case "", "plain", "login":
	default:
		return fmt.Errorf("mail: auth %q: want plain or login", s.Auth)
	}
	if s.User != "" && policy == gomail.NoTLS && !s.ImplicitTLS && !isLoopback(host) {
		return fmt.Errorf("mail: starttls: none with a user would send the password in the clear to %s", host)
	}
	if s.Timeout < 0 {
		return fmt.Errorf("mail: timeout must be positive")
	}
	return nil
}

func (s *MailSpec) hostPort() (string, int, error) {
	server := s.Server
	if server == "" {
		server = "localhost:25"
	}
	host, portS, err := net.SplitHostPort(server)
	if err != nil {
		return "", 0, fmt.Errorf("%q: %v (want host:port)", server, err)
	}
	port, err := strconv.Atoi(portS)
	if err != nil || port <= 0 || port > 65535 {
		return "", 0, fmt.Errorf("%q: bad port", server)
	}
	if host == "" {
		return "", 0, fmt.Errorf("%q: no host", server)
	}
	return host, port, nil
}

func (s *MailSpec) policy() (gomail.TLSPolicy, error) {
	switch s.StartTLS {
	case "", "auto", "opportunistic":
		return gomail.TLSOpportunistic, nil
	case "required", "mandatory":
		return gomail.TLSMandatory, nil
	case "none":
		return gomail.NoTLS, nil
	}
	return 0, fmt.Errorf("starttls %q: want auto, required or none", s.StartTLS)
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

type mailNotifier struct {
	name     string
	s        MailSpec
	env      Env
	from     string
	opts     []gomail.Option
	host     string
	timeout  time.Duration
	hostname string
	tls      *tls.Config
}

func newMail(name string, s MailSpec, env Env) (*mailNotifier, error) {
	host, port, _ := s.hostPort()
	policy, _ := s.policy()
	m := &mailNotifier{name: name, s: s, env: env, host: host, timeout: s.Timeout}
	if m.timeout == 0 {
		m.timeout = defaultMailTimeout
	}
	m.hostname = heloName(env.Hostname)
	m.from = s.From
	if m.from == "" {
		m.from = "picket@" + m.hostname
		if _, err := mail.ParseAddress(m.from); err != nil {
			return nil, fmt.Errorf("mail: no from given, and %q is not an address: %v", m.from, err)
		}
	}
	tlsConf := &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12, InsecureSkipVerify: s.TLSSkipVerify}
	if s.TLSCAFile != "" {
		pem, err := os.ReadFile(s.TLSCAFile)
		if err != nil {
			return nil, fmt.Errorf("mail: tls_ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("mail: tls_ca_file %s: no certificate found", s.TLSCAFile)
		}
		tlsConf.RootCAs = pool
	}
	m.tls = tlsConf
	m.opts = []gomail.Option{
		gomail.WithPort(port),
		gomail.WithTimeout(m.timeout),
		gomail.WithTLSPolicy(policy),
		gomail.WithTLSConfig(tlsConf),
		gomail.WithHELO(m.hostname),
	}
	if s.ImplicitTLS {
		// The TLS handshake is ours (dial below); WithSSL tells go-mail not
		// to offer STARTTLS on top of it.
		m.opts = append(m.opts, gomail.WithSSL())
	}
	if s.User != "" {
		password := s.Password
		if s.PasswordFile != "" {
			b, err := os.ReadFile(s.PasswordFile)
			if err != nil {
				return nil, fmt.Errorf("mail: password_file: %w", err)
			}
			password, _, _ = strings.Cut(string(b), "\n")
			password = strings.TrimRight(password, "\r")
		}
		auth := gomail.SMTPAuthPlain
		if s.Auth == "login" {
			auth = gomail.SMTPAuthLogin
		}
		// go-mail's PLAIN and LOGIN refuse to send credentials without TLS
		// unless the server is on loopback.
		m.opts = append(m.opts, gomail.WithSMTPAuth(auth), gomail.WithUsername(s.User), gomail.WithPassword(password))
	}
	return m, nil
}

// heloName is the host name as SMTP wants it: letters, digits, dots and
// dashes (a hostname is set by root, but a container may have odd ones).
func heloName(h string) string {
	h = strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '-':
			return r
		}
		return -1
	}, h)
	if h == "" {
		return "localhost"
	}
	return h
}

func (m *mailNotifier) Name() string { return m.name }
func (m *mailNotifier) spec() Spec   { s := m.s; return &s }

// Notify sends one mail for b.
func (m *mailNotifier) Notify(ctx context.Context, b alarm.Batch) error {
	if len(b.Alarms) == 0 {
		return nil
	}
	msg, err := m.message(ctx, b)
	if err != nil {
		return Permanent(err)
	}
	ctx, cancel := context.WithTimeout(ctx, m.timeout)
	defer cancel()
	c, err := gomail.NewClient(m.host, append(m.opts, gomail.WithDialContextFunc(m.dialer(ctx)))...)
	if err != nil {
		return Permanent(fmt.Errorf("mail client: %w", err))
	}
	sc, err := c.DialToSMTPClientWithContext(ctx)
	if err != nil {
		return fmt.Errorf("mail to %s: %w", m.s.Server, err)
	}
	if err := c.SendWithSMTPClient(sc, msg); err != nil {
		_ = c.CloseWithSMTPClient(sc)
		return fmt.Errorf("mail to %s: %w", m.s.Server, err)
	}
	// The server accepted the data: it is delivered. A failed QUIT must
	// not make the Dispatcher send it again.
	if err := c.CloseWithSMTPClient(sc); err != nil {
		m.env.Logger.Debug("mail: quit after delivery", "output", m.name, "err", err)
	}
	return nil
}

// dialer connects to the server for one delivery bounded by ctx. go-mail
// applies its own timeout afresh to every command and honours a context
// only while dialing, so a server that accepts and never greets would hold
// a delivery for that timeout per command, whatever the caller's deadline
// or cancellation. The connection dialed here refuses any deadline later
// than ctx's and is closed when ctx is done, so the whole exchange ends
// with ctx: the job's timeout, or the daemon stopping.
func (m *mailNotifier) dialer(ctx context.Context) gomail.DialContextFunc {
	return func(dctx context.Context, network, addr string) (net.Conn, error) {
		var d net.Dialer
		raw, err := d.DialContext(dctx, network, addr)
		if err != nil {
			return nil, err
		}
		c := &boundedConn{Conn: raw}
		c.limit, _ = ctx.Deadline()
		c.stop = context.AfterFunc(ctx, func() { raw.Close() })
		c.SetDeadline(time.Time{})
		if !m.s.ImplicitTLS {
			return c, nil
		}
		tc := tls.Client(c, m.tls)
		if err := tc.HandshakeContext(dctx); err != nil {
			c.Close()
			return nil, err
		}
		return tc, nil
	}
}

// boundedConn is a connection whose deadlines never pass limit, closed by
// stop's context.
type boundedConn struct {
	net.Conn
	limit time.Time
	stop  func() bool
}

func (c *boundedConn) bound(t time.Time) time.Time {
	if !c.limit.IsZero() && (t.IsZero() || t.After(c.limit)) {
		return c.limit
	}
	return t
}

func (c *boundedConn) SetDeadline(t time.Time) error      { return c.Conn.SetDeadline(c.bound(t)) }
func (c *boundedConn) SetReadDeadline(t time.Time) error  { return c.Conn.SetReadDeadline(c.bound(t)) }
func (c *boundedConn) SetWriteDeadline(t time.Time) error { return c.Conn.SetWriteDeadline(c.bound(t)) }

func (c *boundedConn) Close() error {
	c.stop()
	return c.Conn.Close()
}

// message builds the mail for b. Everything that reaches a header from an
// alarm goes through headerSafe; the body through textSafe/logfmtValue.
func (m *mailNotifier) message(ctx context.Context, b alarm.Batch) (*gomail.Msg, error) {
	msg := gomail.NewMsg(gomail.WithNoDefaultUserAgent())
	if err := msg.From(m.from); err != nil {
		return nil, fmt.Errorf("from: %w", err)
	}
	if err := msg.To(m.s.To...); err != nil {
		return nil, fmt.Errorf("to: %w", err)
	}
	msg.Subject(mailSubject(b, m.env.Hostname))
	now := m.env.Now()
	msg.SetDateWithValue(now)
	if id := DeliveryID(ctx); id != "" {
		// The same Message-ID on every retry: a receiver may drop the
		// duplicate that at-least-once delivery can produce.
		msg.SetMessageIDWithValue("picket." + id + "@" + m.hostname)
	} else {
		msg.SetMessageIDWithValue(fmt.Sprintf("picket.%d@%s", now.UnixNano(), m.hostname))
	}
	// RFC 3834: no vacation replies to a robot.
	msg.SetGenHeader(gomail.Header("Auto-Submitted"), "auto-generated")
	msg.SetGenHeader(gomail.HeaderXMailer, "picket")
	msg.SetBodyString(gomail.TypeTextPlain, mailBody(b, m.env.Hostname, now))
	return msg, nil
}

// mailSubject is "[picket] HOST LEVEL RULE: N alarms firing" (or resolved,
// or both counted), with every part header-safe.
func mailSubject(b alarm.Batch, fallbackHost string) string {
	host := b.Host
	if host == "" {
		host = fallbackHost
	}
	firing, resolved := counts(b)
	n := len(b.Alarms)
	noun := "alarms"
	if n == 1 {
		noun = "alarm"
	}
	var what string
	switch {
	case resolved == 0:
		what = fmt.Sprintf("%d %s firing", n, noun)
	case firing == 0:
		what = fmt.Sprintf("%d %s resolved", n, noun)
	default:
		what = fmt.Sprintf("%d %s (%d firing, %d resolved)", n, noun, firing, resolved)
	}
	return fmt.Sprintf("[picket] %s %s %s: %s", headerSafe(host), b.Level, headerSafe(b.Rule), what)
}

// mailBody lists every alarm of b, one row per line as logfmt (PIKT's
// $inline), with the rendered message under it when it says more.
func mailBody(b alarm.Batch, fallbackHost string, now time.Time) string {
	host := b.Host
	if host == "" {
		host = fallbackHost
	}
	firing, resolved := counts(b)
	var sb strings.Builder
	fmt.Fprintf(&sb, "picket on %s: rule %s, level %s: %d firing, %d resolved.\n\n",
		textSafe(host), textSafe(b.Rule), b.Level, firing, resolved)
	for _, a := range b.Alarms {
		status := string(a.Status)
		if status == "" {
			status = string(alarm.Firing)
		}
		fmt.Fprintf(&sb, "%-8s %s", status, logfmtValue(a.Case))
		keys := make([]string, 0, len(a.Row))
		for k := range a.Row {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			fmt.Fprintf(&sb, " %s=%s", logfmtKey(k), logfmtValue(formatValue(a.Row[k])))
		}
		if a.Status == alarm.Resolved && !a.EndsAt.IsZero() {
			fmt.Fprintf(&sb, " (since %s, ended %s)", a.StartsAt.UTC().Format(time.RFC3339), a.EndsAt.UTC().Format(time.RFC3339))
		} else if !a.StartsAt.IsZero() {
			fmt.Fprintf(&sb, " (since %s)", a.StartsAt.UTC().Format(time.RFC3339))
		}
		sb.WriteByte('\n')
		if a.Message != "" && a.Message != alarm.Inline(a.Row) {
			fmt.Fprintf(&sb, "         %s\n", textSafe(a.Message))
		}
	}
	fmt.Fprintf(&sb, "\n-- \npicket, %s\n", now.UTC().Format(time.RFC3339))
	return sb.String()
}
