package notify

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/picket-guard/picket/internal/alarm"
)

// A cluster in urls: every alert goes to each member, each on its own
// loop. With one member hung (it accepts and never answers), the other
// real Alertmanager has the alert at once, and the hung one's batch waits
// in the spool under its own name, to be delivered once it answers, even
// by a picket restarted with a configuration that no longer names it.
func TestAlertmanagerClusterMemberDownHoldsUpNoOther(t *testing.T) {
	base := startAlertmanager(t)
	hung := newHookServer(t, 200)
	hung.mu.Lock()
	hung.delay = time.Minute // answers, but only after a minute
	hung.mu.Unlock()
	env := testEnv(t)
	env.Now = time.Now
	n, err := New("am", &AlertmanagerSpec{URLs: []string{base, hung.URL + "/"}, Timeout: 30 * time.Second, Retries: intp(0)}, env)
	if err != nil {
		t.Fatal(err)
	}
	d, err := NewDispatcher(DispatcherOptions{Env: env, Outputs: map[string]Notifier{"am": n}, MinBackoff: 50 * time.Millisecond, MaxBackoff: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { d.Run(ctx); close(done) }()

	b := procBatch(alarm.Firing, procRow("nobody", "imapd", 93))
	b.Alarms[0].StartsAt = time.Now()
	start := time.Now()
	if err := d.Send(context.Background(), n, b); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"alertname": "ProcNumChkRed", "host": "moscow", "user": "nobody", "comm": "imapd"}
	eventually(t, "the alert in the working Alertmanager", func() bool {
		_, ok := activeAlert(getAlerts(t, base, ""), want)
		return ok
	})
	t.Logf("the working member had the alert %v after Send, beside a hung one", time.Since(start).Round(time.Millisecond))
	if !waitFor(5*time.Second, func() bool { return hung.requests() >= 1 }) {
		t.Fatal("the hung member was never tried")
	}
	// The working member's batch leaves the spool just after its answer,
	// which may come after the alert shows in its API: wait for that.
	if !waitFor(5*time.Second, func() bool { return d.Pending() == 1 }) {
		t.Errorf("pending %d, want the hung member's batch alone", d.Pending())
	}
	stop()
	<-done
	d.Close()

	// Restarted with a configuration without the output: the spooled
	// batch names its member and carries its spec, and is delivered.
	hung.mu.Lock()
	hung.delay = 0
	hung.mu.Unlock()
	d2, err := NewDispatcher(DispatcherOptions{Env: env, Outputs: map[string]Notifier{}})
	if err != nil {
		t.Fatal(err)
	}
	defer d2.Close()
	if err := d2.Flush(context.Background()); err != nil {
		t.Fatalf("Flush after the restart: %v", err)
	}
	if d2.Pending() != 0 || hung.requests() < 2 {
		t.Fatalf("pending %d after the member answered (%d requests)", d2.Pending(), hung.requests())
	}
	hung.mu.Lock()
	last := hung.bodies[len(hung.bodies)-1]
	hung.mu.Unlock()
	var posted []postableAlert
	if err := json.Unmarshal(last, &posted); err != nil || len(posted) != 1 || posted[0].Labels["user"] != "nobody" {
		t.Errorf("the member got %s (%v)", last, err)
	}
}

func TestAlertmanagerSpecURLs(t *testing.T) {
	for _, tc := range []struct {
		spec AlertmanagerSpec
		err  string
	}{
		{AlertmanagerSpec{URL: "http://127.0.0.1:9093"}, ""},
		{AlertmanagerSpec{URLs: []string{"http://127.0.0.1:9093", "http://127.0.0.1:9094"}}, ""},
		{AlertmanagerSpec{}, "url is required"},
		{AlertmanagerSpec{URL: "http://127.0.0.1:9093", URLs: []string{"http://127.0.0.1:9094"}}, "both set"},
		{AlertmanagerSpec{URLs: []string{"http://127.0.0.1:9093", "http://127.0.0.1:9093/"}}, "listed twice"},
		{AlertmanagerSpec{URLs: []string{"http://127.0.0.1:9093", "ftp://x"}}, "urls[1]"},
		{AlertmanagerSpec{URLs: []string{"http://127.0.0.1:9093", "http://{{.user}}:9093"}}, "placeholders"},
	} {
		err := tc.spec.Validate()
		if tc.err == "" && err != nil || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("%+v: %v, want %q", tc.spec, err, tc.err)
		}
	}
}

// Members are outputs named NAME@URL, each with a spec of one URL (what
// the spool keeps); a cluster of one is a single Alertmanager under the
// output's own name, so a spool written before the list is delivered.
func TestAlertmanagerClusterMembers(t *testing.T) {
	n, err := New("am", &AlertmanagerSpec{URLs: []string{"http://10.0.0.1:9093/", "http://10.0.0.2:9093"}, Labels: map[string]string{"team": "mail"}}, testEnv(t))
	if err != nil {
		t.Fatal(err)
	}
	ts := n.(fanout).targets()
	if len(ts) != 2 || ts[0].Name() != "am@http://10.0.0.1:9093" || ts[1].Name() != "am@http://10.0.0.2:9093" {
		t.Fatalf("members %v", ts)
	}
	s := specOf(ts[1]).(*AlertmanagerSpec)
	if s.URL != "http://10.0.0.2:9093" || s.URLs != nil || s.Labels["team"] != "mail" || s.Validate() != nil {
		t.Errorf("member spec %+v", s)
	}
	one, err := New("am", &AlertmanagerSpec{URLs: []string{"http://10.0.0.1:9093"}}, testEnv(t))
	if err != nil {
		t.Fatal(err)
	}
	if got := one.(fanout).targets(); len(got) != 0 || one.Name() != "am" {
		t.Errorf("a cluster of one: %d members, name %s", len(got), one.Name())
	}
}

// A rule over doctor's findings: the finding's id is the label check, as
// Prometheus's PicketFinding* alerts over picket_finding_severity have it.
func TestAlertmanagerFindingLabels(t *testing.T) {
	n, err := New("am", &AlertmanagerSpec{URL: "http://127.0.0.1:9093"}, testEnv(t))
	if err != nil {
		t.Fatal(err)
	}
	al := alarm.Alarm{Host: "moscow", Rule: "findings", Level: alarm.Critical, Status: alarm.Firing, Table: "findings", Key: "id=tcp-orphans",
		Row: map[string]any{"id": "tcp-orphans", "severity": "critical", "title": "TCP orphans", "rank": 2}}
	p := n.(*alertmanagerNotifier).alert(al, testNow)
	if p.Labels["check"] != "tcp-orphans" || p.Labels["id"] != "" || p.Labels["severity"] != "critical" || p.Labels["host"] != "moscow" {
		t.Errorf("labels %v", p.Labels)
	}
}
