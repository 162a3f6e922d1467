package notify

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// decodeSpec decodes like the rules loader: strictly, one kind per output.
func decodeSpec(t *testing.T, kind, src string) (Spec, error) {
	t.Helper()
	s, ok := NewSpec(kind)
	if !ok {
		t.Fatalf("NewSpec(%q) unknown", kind)
	}
	dec := yaml.NewDecoder(bytes.NewReader([]byte(src)))
	dec.KnownFields(true)
	if err := dec.Decode(s); err != nil {
		return nil, err
	}
	return s, s.Validate()
}

func TestSpecsDecodeStrictly(t *testing.T) {
	s, err := decodeSpec(t, "mail", `{to: [root@localhost], server: "127.0.0.1:25", starttls: auto, timeout: 45s}`)
	if err != nil {
		t.Fatal(err)
	}
	if m := s.(*MailSpec); m.Timeout != 45*time.Second || m.To[0] != "root@localhost" {
		t.Errorf("%+v", m)
	}
	s, err = decodeSpec(t, "webhook", `{url: "http://127.0.0.1:9000/x", timeout: 5s, retries: 0}`)
	if err != nil {
		t.Fatal(err)
	}
	if w := s.(*WebhookSpec); w.Timeout != 5*time.Second || w.Retries == nil || *w.Retries != 0 {
		t.Errorf("%+v", w)
	}
	for kind, src := range map[string]string{
		"log":          `{path: /var/log/picket/x.log, format: logfmt}`,
		"alertmanager": `{url: "http://127.0.0.1:9093", generator_url: "http://picket/", labels: {team: mail}}`,
	} {
		if _, err := decodeSpec(t, kind, src); err != nil {
			t.Errorf("%s: %v", kind, err)
		}
	}
	if _, err := decodeSpec(t, "mail", `{to: [root@localhost], sever: x}`); err == nil || !strings.Contains(err.Error(), "sever") {
		t.Errorf("unknown key accepted: %v", err)
	}
	if got := strings.Join(Kinds(), ","); got != "alertmanager,log,mail,webhook" {
		t.Errorf("Kinds = %s", got)
	}
	for _, k := range Kinds() {
		s, _ := NewSpec(k)
		if KindOf(s) != k {
			t.Errorf("KindOf(NewSpec(%q)) = %q", k, KindOf(s))
		}
	}
}

func TestSpecValidate(t *testing.T) {
	for _, tc := range []struct {
		kind, src, err string
	}{
		{"log", `{}`, "give a path"},
		{"log", `{path: relative.log}`, "not absolute"},
		{"log", `{path: "/var/log/{{.user}}.log"}`, "placeholders"},
		{"log", `{stderr: true, format: xml}`, "format"},
		{"mail", `{}`, "at least one recipient"},
		{"mail", `{to: ["{{.user}}@localhost"]}`, "placeholders"},
		{"mail", `{to: ["root@localhost\nBcc: x@y"]}`, "to:"},
		{"mail", `{to: [root@localhost], server: "mail.example.com"}`, "host:port"},
		{"mail", `{to: [root@localhost], starttls: maybe}`, "starttls"},
		{"mail", `{to: [root@localhost], server: "mail.example.com:25", tls_skip_verify: true}`, "only allowed for a server on loopback"},
		{"mail", `{to: [root@localhost], server: "mail.example.com:25", starttls: none, user: u, password: p}`, "in the clear"},
		{"mail", `{to: [root@localhost], user: u}`, "needs password"},
		{"mail", `{to: [root@localhost], password: p}`, "needs a user"},
		{"mail", `{to: [root@localhost], user: u, password: p, password_file: /f}`, "not both"},
		{"mail", `{to: [root@localhost], user: u, password: p, auth: cram}`, "auth"},
		{"webhook", `{url: "ftp://x/"}`, "http or https"},
		{"webhook", `{url: "http://x/{{.comm}}"}`, "placeholders"},
		{"webhook", `{url: "http://x/", retries: 99}`, "retries"},
		{"webhook", `{url: "http://x/", headers: {"X-A": "a\r\nB: c"}}`, "header"},
		{"alertmanager", `{url: "http://x", labels: {alertname: y}}`, "set by picket"},
		{"alertmanager", `{url: "http://x", labels: {"bad-name": y}}`, "label name"},
		{"alertmanager", `{}`, "url"},
	} {
		_, err := decodeSpec(t, tc.kind, tc.src)
		if err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%s %s: err %v, want %q", tc.kind, tc.src, err, tc.err)
		}
	}
	// Skipping verification is fine for a loopback relay; localhost's own
	// clear-text AUTH too.
	for _, src := range []string{
		`{to: [root@localhost], server: "127.0.0.1:2525", tls_skip_verify: true, starttls: required}`,
		`{to: [root@localhost], server: "[::1]:25", starttls: none, user: u, password: p}`,
	} {
		if _, err := decodeSpec(t, "mail", src); err != nil {
			t.Errorf("%s: %v", src, err)
		}
	}
}

func TestNewRejectsBadSpec(t *testing.T) {
	if _, err := New("x", &LogSpec{}, Env{}); err == nil {
		t.Error("New accepted an invalid spec")
	}
	if _, err := New("x", (*LogSpec)(nil), Env{}); err == nil {
		t.Error("New accepted a nil spec")
	}
	// No from, and a hostname that makes no address.
	if _, err := New("x", &MailSpec{To: []string{"root@localhost"}}, Env{Hostname: "!!!"}); err != nil {
		t.Errorf("odd hostname: %v", err)
	}
}
