package notify

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/picket-guard/picket/internal/alarm"
)

// Process names are chosen by whoever runs the process. These two go
// through every medium: nothing is executed, no header or line is forged.
const (
	shellComm  = "$(touch /tmp/x)"
	headerComm = "evil\nBcc: victim@example.com\nSubject: pwned"
)

func hostileBatch(tmpComm string) alarm.Batch {
	return procBatch(alarm.Firing,
		procRow("mallory", shellComm, 61),
		procRow("mallory", headerComm, 62),
		procRow("mallory", tmpComm, 63))
}

func TestHostileNames(t *testing.T) {
	// The literal /tmp/x of the issue, and one in our own directory that
	// cannot exist before.
	tmpTarget := filepath.Join(t.TempDir(), "pwned")
	tmpComm := "`touch " + tmpTarget + "`"
	before, beforeErr := os.Stat("/tmp/x")
	b := hostileBatch(tmpComm)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	comms := []string{shellComm, headerComm, tmpComm}

	t.Run("log", func(t *testing.T) {
		dir := t.TempDir()
		for _, format := range []string{"logfmt", "json"} {
			path := filepath.Join(dir, format+".log")
			n, err := New("diag", &LogSpec{Path: path, Format: format}, testEnv(t))
			if err != nil {
				t.Fatal(err)
			}
			if err := n.Notify(ctx, b); err != nil {
				t.Fatal(err)
			}
			n.(*logNotifier).Close()
			data, _ := os.ReadFile(path)
			lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
			if len(lines) != 3 {
				t.Fatalf("%s: %d lines for 3 alarms:\n%s", format, len(lines), data)
			}
			for i, line := range lines {
				checkNoRawControl(t, []byte(line))
				var comm string
				if format == "json" {
					var a alarm.Alarm
					if err := json.Unmarshal([]byte(line), &a); err != nil {
						t.Fatalf("%s: %v", line, err)
					}
					comm, _ = a.Row["comm"].(string)
				} else {
					kv, err := parseLogfmt(line)
					if err != nil {
						t.Fatalf("%s: %v", line, err)
					}
					comm = kv["comm"]
					if kv["level"] != "emergency" || kv["user"] != "mallory" {
						t.Errorf("forged fields: %v", kv)
					}
				}
				if comm != comms[i] {
					t.Errorf("%s line %d: comm read back as %q, want %q", format, i, comm, comms[i])
				}
			}
			t.Logf("%s:\n%s", format, data)
		}
	})

	t.Run("mail", func(t *testing.T) {
		srv := newSMTPServer(t)
		srv.Start()
		n := newMailNotifier(t, MailSpec{To: []string{"root@localhost"}, Server: srv.addr}, testEnv(t))
		if err := n.Notify(ctx, b); err != nil {
			t.Fatal(err)
		}
		// The rule name is the administrator's, not an attacker's, but the
		// header path is locked twice anyway.
		evilRule := b
		evilRule.Rule = "ProcNumChkRed\r\nBcc: victim@example.com"
		if err := n.Notify(ctx, evilRule); err != nil {
			t.Fatal(err)
		}
		got := srv.Received()
		if len(got) != 2 {
			t.Fatalf("received %d mails", len(got))
		}
		for i, r := range got {
			if strings.Join(r.To, ",") != "root@localhost" {
				t.Errorf("mail %d: envelope recipients %v", i, r.To)
			}
			m := parseMail(t, r)
			if len(m.Header["Bcc"]) != 0 || len(m.Header["Subject"]) != 1 {
				t.Errorf("mail %d: injected headers: %v", i, m.Header)
			}
			head, _, _ := strings.Cut(m.Raw, "\r\n\r\n")
			for _, l := range strings.Split(head, "\r\n") {
				if strings.HasPrefix(strings.ToLower(l), "bcc:") || strings.Contains(l, "pwned") {
					t.Errorf("mail %d: header line %q", i, l)
				}
			}
			if strings.Contains(m.Body, "\nBcc:") || strings.Contains(m.Body, "\nSubject: pwned") {
				t.Errorf("mail %d: a body line starts with the injected text:\n%s", i, m.Body)
			}
			if !strings.Contains(m.Body, `comm="evil\nBcc: victim@example.com\nSubject: pwned" count=62 user=mallory`) ||
				!strings.Contains(m.Body, `comm="$(touch /tmp/x)" count=61`) {
				t.Errorf("mail %d: rows not listed escaped:\n%s", i, m.Body)
			}
		}
		if s := parseMail(t, got[0]).Header.Get("Subject"); s != "[picket] moscow emergency ProcNumChkRed: 3 alarms firing" {
			t.Errorf("Subject = %q", s)
		}
		if s := parseMail(t, got[1]).Header.Get("Subject"); !strings.HasPrefix(s, `[picket] moscow emergency ProcNumChkRed\r\nBcc: victim@example.com: 3 alarms`) {
			t.Errorf("Subject = %q", s)
		}
	})

	t.Run("webhook", func(t *testing.T) {
		h := newHookServer(t, 200)
		n := newWebhookNotifier(t, WebhookSpec{URL: h.URL})
		if err := n.Notify(ctx, b); err != nil {
			t.Fatal(err)
		}
		body := h.bodies[0]
		checkNoRawControl(t, body)
		var p struct {
			Alarms []alarm.Alarm `json:"alarms"`
		}
		if err := json.Unmarshal(body, &p); err != nil {
			t.Fatal(err)
		}
		for i, a := range p.Alarms {
			if a.Row["comm"] != comms[i] {
				t.Errorf("alarm %d: comm %q, want %q", i, a.Row["comm"], comms[i])
			}
		}
	})

	t.Run("alertmanager", func(t *testing.T) {
		base := startAlertmanager(t)
		env := testEnv(t)
		env.Now = time.Now
		n, err := New("am", &AlertmanagerSpec{URL: base}, env)
		if err != nil {
			t.Fatal(err)
		}
		hb := hostileBatch(tmpComm)
		for i := range hb.Alarms {
			hb.Alarms[i].StartsAt = time.Now().Add(-time.Minute)
		}
		if err := n.Notify(ctx, hb); err != nil {
			t.Fatal(err)
		}
		eventually(t, "three alerts", func() bool {
			return len(getAlerts(t, base, `user="mallory"`)) == 3
		})
		want := map[string]bool{textSafe(shellComm): true, `evil\nBcc: victim@example.com\nSubject: pwned`: true, textSafe(tmpComm): true}
		for _, a := range getAlerts(t, base, `user="mallory"`) {
			if !want[a.Labels["comm"]] {
				t.Errorf("comm label %q", a.Labels["comm"])
			}
			for k, v := range a.Annotations {
				if strings.ContainsAny(v, "\n\r\x1b") {
					t.Errorf("annotation %s holds a raw control byte: %q", k, v)
				}
			}
		}
	})

	if _, err := os.Stat(tmpTarget); err == nil {
		t.Fatalf("%s exists: a process name was executed", tmpTarget)
	}
	after, afterErr := os.Stat("/tmp/x")
	switch {
	case beforeErr != nil && afterErr == nil:
		t.Fatal("/tmp/x was created: a process name was executed")
	case beforeErr == nil && afterErr == nil && !after.ModTime().Equal(before.ModTime()):
		t.Fatal("/tmp/x was touched: a process name was executed")
	}
}
