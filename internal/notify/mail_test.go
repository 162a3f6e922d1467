package notify

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/picket-guard/picket/internal/alarm"
)

func newMailNotifier(t *testing.T, spec MailSpec, env Env) Notifier {
	t.Helper()
	n, err := New("ops", &spec, env)
	if err != nil {
		t.Fatalf("New mail: %v", err)
	}
	return n
}

func TestMailListsEveryRow(t *testing.T) {
	srv := newSMTPServer(t)
	srv.Start()
	n := newMailNotifier(t, MailSpec{To: []string{"root@localhost", "ops@example.com"}, Server: srv.addr}, testEnv(t))

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := n.Notify(ctx, stormBatch()); err != nil {
		t.Fatalf("Notify: %v", err)
	}
	got := srv.Received()
	if len(got) != 1 {
		t.Fatalf("server received %d mails, want 1", len(got))
	}
	if got[0].From != "picket@moscow" || strings.Join(got[0].To, ",") != "root@localhost,ops@example.com" {
		t.Errorf("envelope from %q to %q", got[0].From, got[0].To)
	}
	m := parseMail(t, got[0])
	if s := m.Header.Get("Subject"); s != "[picket] moscow emergency ProcNumChkRed: 3 alarms firing" {
		t.Errorf("Subject = %q", s)
	}
	if m.Header.Get("Auto-Submitted") != "auto-generated" || m.Header.Get("Message-Id") == "" || m.Header.Get("Date") == "" {
		t.Errorf("headers: %v", m.Header)
	}
	for _, want := range []string{
		"picket on moscow: rule ProcNumChkRed, level emergency: 3 firing, 0 resolved.",
		"firing   imapd comm=imapd count=93 user=alice (since 2026-04-28T09:25:00Z)",
		"firing   imapd comm=imapd count=121 user=bob (since 2026-04-28T09:25:00Z)",
		"firing   imapd comm=imapd count=90 user=carol (since 2026-04-28T09:25:00Z)",
	} {
		if !strings.Contains(m.Body, want+"\n") {
			t.Errorf("body lacks %q:\n%s", want, m.Body)
		}
	}
}

func TestMailSubjectSaysResolved(t *testing.T) {
	for _, tc := range []struct {
		b    alarm.Batch
		want string
	}{
		{procBatch(alarm.Resolved, procRow("alice", "imapd", 3)), "[picket] moscow emergency ProcNumChkRed: 1 alarm resolved"},
		{procBatch(alarm.Firing, procRow("alice", "imapd", 93)), "[picket] moscow emergency ProcNumChkRed: 1 alarm firing"},
		{alarm.Batch{Host: "moscow", Rule: "R", Level: alarm.Warning, Alarms: []alarm.Alarm{
			procAlarm(procRow("a", "x", 1), alarm.Firing), procAlarm(procRow("b", "x", 1), alarm.Firing),
			procAlarm(procRow("c", "x", 1), alarm.Resolved)}}, "[picket] moscow warning R: 3 alarms (2 firing, 1 resolved)"},
	} {
		if got := mailSubject(tc.b, "fallback"); got != tc.want {
			t.Errorf("subject %q, want %q", got, tc.want)
		}
	}
}

func TestMailStartTLSAndVerification(t *testing.T) {
	srv := newSMTPServer(t)
	srv.tlsConf = selfSigned(t)
	srv.Start()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b := procBatch(alarm.Firing, procRow("alice", "imapd", 93))

	// Verification is on by default: a self-signed relay is refused.
	strict := newMailNotifier(t, MailSpec{To: []string{"root@localhost"}, Server: srv.addr, StartTLS: "required"}, testEnv(t))
	if err := strict.Notify(ctx, b); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("a self-signed certificate was accepted with verification on (err %v)", err)
	}
	if n := len(srv.Received()); n != 0 {
		t.Fatalf("%d mails went through an unverified TLS session", n)
	}
	// Skipping it is allowed for loopback, and the mail then goes over TLS.
	lax := newMailNotifier(t, MailSpec{To: []string{"root@localhost"}, Server: srv.addr, StartTLS: "required", TLSSkipVerify: true}, testEnv(t))
	if err := lax.Notify(ctx, b); err != nil {
		t.Fatalf("Notify over STARTTLS: %v", err)
	}
	// starttls: none stays in the clear.
	clear := newMailNotifier(t, MailSpec{To: []string{"root@localhost"}, Server: srv.addr, StartTLS: "none"}, testEnv(t))
	if err := clear.Notify(ctx, b); err != nil {
		t.Fatalf("Notify without TLS: %v", err)
	}
	got := srv.Received()
	if len(got) != 2 || !got[0].TLS || got[1].TLS {
		t.Fatalf("received %d mails, TLS flags %v/%v; want the first over TLS and the second not", len(got), got[0].TLS, len(got) > 1 && got[1].TLS)
	}
}

func TestMailAuthWithPasswordFile(t *testing.T) {
	srv := newSMTPServer(t)
	srv.user, srv.password = "picket", "s3cret horse"
	srv.Start()
	pw := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pw, []byte("s3cret horse\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b := procBatch(alarm.Firing, procRow("alice", "imapd", 93))

	good := newMailNotifier(t, MailSpec{To: []string{"root@localhost"}, Server: srv.addr, User: "picket", PasswordFile: pw}, testEnv(t))
	if err := good.Notify(ctx, b); err != nil {
		t.Fatalf("Notify with AUTH: %v", err)
	}
	bad := newMailNotifier(t, MailSpec{To: []string{"root@localhost"}, Server: srv.addr, User: "picket", Password: "wrong"}, testEnv(t))
	if err := bad.Notify(ctx, b); err == nil {
		t.Fatal("a wrong password was accepted")
	}
	if got := srv.Received(); len(got) != 1 {
		t.Fatalf("received %d mails, want 1", len(got))
	}
}

// The test: the mail server is down when the alarm fires; the mail
// waits in the spool and arrives once, exactly once, when it is back.
func TestMailSpooledWhileServerDown(t *testing.T) {
	srv := newSMTPServer(t)
	srv.Start()
	env := testEnv(t)
	n := newMailNotifier(t, MailSpec{To: []string{"root@localhost"}, Server: srv.addr, Timeout: 5 * time.Second}, env)
	dir := filepath.Join(env.StateDir, "spool")
	d, err := NewDispatcher(DispatcherOptions{Env: env, Outputs: map[string]Notifier{"ops": n}})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	// Up: delivered by the first pass, nothing left behind.
	if err := d.Send(ctx, n, procBatch(alarm.Firing, procRow("alice", "imapd", 93))); err != nil {
		t.Fatalf("Send with the server up: %v", err)
	}
	if err := d.Flush(ctx); err != nil || d.Pending() != 0 || len(srv.Received()) != 1 {
		t.Fatalf("Flush %v: pending %d, received %d; want 0 and 1", err, d.Pending(), len(srv.Received()))
	}

	// Down: spooled.
	srv.Stop()
	if err := d.Send(ctx, n, stormBatch()); err != nil {
		t.Fatalf("Send with the server down = %v, want it spooled", err)
	}
	if d.Pending() != 1 {
		t.Fatalf("Pending = %d, want 1", d.Pending())
	}
	if files := spoolFiles(t, dir); len(files) != 1 {
		t.Fatalf("spool holds %v, want one file", files)
	}
	// A retry while still down keeps it.
	if err := d.Flush(ctx); err == nil || d.Pending() != 1 {
		t.Fatalf("Flush with the server down: err %v, pending %d", err, d.Pending())
	}

	// Back on the same port: one Flush delivers it, once.
	srv.Start()
	if err := d.Flush(ctx); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	if err := d.Flush(ctx); err != nil { // a second pass must not send it again
		t.Fatalf("Flush: %v", err)
	}
	got := srv.Received()
	if len(got) != 2 {
		t.Fatalf("server received %d mails, want 2 (one before, the spooled one after)", len(got))
	}
	m := parseMail(t, got[1])
	if s := m.Header.Get("Subject"); s != "[picket] moscow emergency ProcNumChkRed: 3 alarms firing" {
		t.Errorf("spooled mail Subject = %q", s)
	}
	for _, u := range []string{"user=alice", "user=bob", "user=carol"} {
		if !strings.Contains(m.Body, u) {
			t.Errorf("spooled mail lacks %s:\n%s", u, m.Body)
		}
	}
	if d.Pending() != 0 {
		t.Errorf("Pending = %d after delivery", d.Pending())
	}
	if files := spoolFiles(t, dir); len(files) != 0 {
		t.Errorf("spool still holds %v", files)
	}
}

// A picket restart between the failure and the retry: the new Dispatcher
// finds the spooled mail and delivers it.
func TestMailSpoolSurvivesDispatcherRestart(t *testing.T) {
	srv := newSMTPServer(t)
	srv.Start()
	srv.Stop() // we only wanted a port
	env := testEnv(t)
	spec := MailSpec{To: []string{"root@localhost"}, Server: srv.addr, Timeout: 5 * time.Second}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	d1, err := NewDispatcher(DispatcherOptions{Env: env, Outputs: map[string]Notifier{"ops": newMailNotifier(t, spec, env)}})
	if err != nil {
		t.Fatal(err)
	}
	n1 := newMailNotifier(t, spec, env)
	if err := d1.Send(ctx, n1, stormBatch()); err != nil {
		t.Fatalf("Send = %v, want it spooled", err)
	}
	if err := d1.Flush(ctx); err == nil {
		t.Fatal("delivered with the server down")
	}
	// A second dispatcher on a spool in use is refused.
	if d, err := NewDispatcher(DispatcherOptions{Env: env}); err == nil {
		d.Close()
		t.Fatal("two dispatchers opened the same spool")
	}
	d1.Close()

	srv.Start()
	d2, err := NewDispatcher(DispatcherOptions{Env: env, Outputs: map[string]Notifier{"ops": newMailNotifier(t, spec, env)}})
	if err != nil {
		t.Fatal(err)
	}
	defer d2.Close()
	if d2.Pending() != 1 {
		t.Fatalf("restarted dispatcher sees %d pending, want 1", d2.Pending())
	}
	// Run (as the daemon does) rather than Flush: a restart retries at once.
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- d2.Run(runCtx) }()
	deadline := time.Now().Add(20 * time.Second)
	for d2.Pending() > 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	stop()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
	got := srv.Received()
	if len(got) != 1 || d2.Pending() != 0 {
		t.Fatalf("received %d, pending %d; want 1 and 0", len(got), d2.Pending())
	}
	if m := parseMail(t, got[0]); !strings.Contains(m.Body, "user=bob") {
		t.Errorf("resumed mail:\n%s", m.Body)
	}
}

// deliverThenFail stands for a crash between the server's "250 OK" and
// the removal from the spool: the mail went out but the Dispatcher thinks it
// did not.
type deliverThenFail struct {
	Notifier
	failures int
}

func (d *deliverThenFail) Notify(ctx context.Context, b alarm.Batch) error {
	if err := d.Notifier.Notify(ctx, b); err != nil {
		return err
	}
	if d.failures > 0 {
		d.failures--
		return errors.New("crashed after the server accepted it")
	}
	return nil
}

// At-least-once: the duplicate carries the same Message-ID, so a mail
// reader can fold it.
func TestMailDuplicateKeepsMessageID(t *testing.T) {
	srv := newSMTPServer(t)
	srv.Start()
	env := testEnv(t)
	n := &deliverThenFail{Notifier: newMailNotifier(t, MailSpec{To: []string{"root@localhost"}, Server: srv.addr}, env), failures: 1}
	d, err := NewDispatcher(DispatcherOptions{Env: env, Outputs: map[string]Notifier{"ops": n}})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	ctx := context.Background()
	if err := d.Send(ctx, n, stormBatch()); err != nil {
		t.Fatalf("Send = %v", err)
	}
	if err := d.Flush(ctx); err == nil {
		t.Fatal("the first attempt's failure was not reported")
	}
	if err := d.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	got := srv.Received()
	if len(got) != 2 {
		t.Fatalf("received %d, want 2 (the original and its at-least-once duplicate)", len(got))
	}
	id1, id2 := parseMail(t, got[0]).Header.Get("Message-Id"), parseMail(t, got[1]).Header.Get("Message-Id")
	if id1 == "" || id1 != id2 {
		t.Errorf("Message-IDs %q and %q differ", id1, id2)
	}
}

func spoolFiles(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		if e.Name() != ".lock" {
			out = append(out, e.Name())
		}
	}
	return out
}
