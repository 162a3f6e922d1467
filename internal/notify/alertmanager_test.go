package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/picket-guard/picket/internal/alarm"
)

// alertmanagerBinary finds Debian's prometheus-alertmanager (scripts/test
// installs it when run as root).
func alertmanagerBinary(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"/usr/bin/prometheus-alertmanager", "prometheus-alertmanager", "alertmanager"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Geteuid() != 0 {
		t.Skip("prometheus-alertmanager is not installed and we are not root to install it (scripts/test installs it as root)")
	}
	t.Fatal("prometheus-alertmanager is not installed: run scripts/test (it installs it) or apt-get install prometheus-alertmanager")
	return ""
}

// startAlertmanager runs a real Alertmanager on a free loopback port with
// its own storage and clustering off, waits for /-/ready, and kills it when
// the test ends.
func startAlertmanager(t *testing.T) string {
	t.Helper()
	bin := alertmanagerBinary(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "alertmanager.yml")
	if err := os.WriteFile(cfg, []byte("route:\n  receiver: blackhole\nreceivers:\n  - name: blackhole\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var lastLog []byte
	for try := 0; try < 3; try++ { // a free port can be taken between our check and its bind
		port := freePort(t)
		base := "http://127.0.0.1:" + port
		var logBuf safeBuffer
		cmd := exec.Command(bin,
			"--config.file="+cfg,
			"--storage.path="+filepath.Join(dir, fmt.Sprintf("data%d", try)),
			"--web.listen-address=127.0.0.1:"+port,
			"--cluster.listen-address=",
			"--log.level=warn")
		cmd.Stdout, cmd.Stderr = &logBuf, &logBuf
		// If the test binary dies, so does Alertmanager.
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			t.Fatalf("start %s: %v", bin, err)
		}
		exited := make(chan struct{})
		go func() { cmd.Wait(); close(exited) }()
		stop := func() {
			cmd.Process.Kill()
			<-exited
		}
		if waitReady(base, exited, 30*time.Second) {
			t.Cleanup(stop)
			return base
		}
		stop()
		lastLog = []byte(logBuf.String())
	}
	t.Fatalf("alertmanager did not become ready:\n%s", lastLog)
	return ""
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_, port, _ := net.SplitHostPort(l.Addr().String())
	return port
}

func waitReady(base string, exited <-chan struct{}, limit time.Duration) bool {
	deadline := time.Now().Add(limit)
	c := &http.Client{Timeout: time.Second}
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return false
		default:
		}
		resp, err := c.Get(base + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return true
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return false
}

// gettableAlert is what GET /api/v2/alerts returns.
type gettableAlert struct {
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations"`
	StartsAt     time.Time         `json:"startsAt"`
	EndsAt       time.Time         `json:"endsAt"`
	GeneratorURL string            `json:"generatorURL"`
	Status       struct {
		State string `json:"state"`
	} `json:"status"`
}

func getAlerts(t *testing.T, base, filter string) []gettableAlert {
	t.Helper()
	u := base + "/api/v2/alerts"
	if filter != "" {
		u += "?filter=" + url.QueryEscape(filter)
	}
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	buf.ReadFrom(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %s", u, resp.StatusCode, buf.Bytes())
	}
	var out []gettableAlert
	if err := json.Unmarshal(buf.Bytes(), &out); err != nil {
		t.Fatalf("GET %s: %v\n%s", u, err, buf.Bytes())
	}
	return out
}

// activeAlert returns the active alert whose labels include want (an alert
// that has ended counts as gone, whether or not the API still lists it).
func activeAlert(alerts []gettableAlert, want map[string]string) (gettableAlert, bool) {
next:
	for _, a := range alerts {
		for k, v := range want {
			if a.Labels[k] != v {
				continue next
			}
		}
		if !a.EndsAt.IsZero() && !a.EndsAt.After(time.Now()) {
			continue
		}
		return a, true
	}
	return gettableAlert{}, false
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// The test: a real Alertmanager shows the alert with picket's
// labels, and no longer shows it active once it is resolved.
func TestAlertmanagerFiresAndResolves(t *testing.T) {
	base := startAlertmanager(t)
	env := testEnv(t)
	env.Now = time.Now // Alertmanager compares endsAt with its own clock
	n, err := New("am", &AlertmanagerSpec{URL: base + "/", GeneratorURL: "http://picket.example/rules/ProcNumChkRed",
		Labels: map[string]string{"team": "mail"}}, env)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	now := time.Now()
	firing := procBatch(alarm.Firing, procRow("alice", "imapd", 93), procRow("bob", "imapd", 121))
	for i := range firing.Alarms {
		firing.Alarms[i].StartsAt = now.Add(-5 * time.Minute)
	}
	if err := n.Notify(ctx, firing); err != nil {
		t.Fatalf("Notify firing: %v", err)
	}

	alice := map[string]string{"alertname": "ProcNumChkRed", "user": "alice"}
	var got gettableAlert
	eventually(t, "alice's alert in Alertmanager", func() bool {
		var ok bool
		got, ok = activeAlert(getAlerts(t, base, `alertname="ProcNumChkRed"`), alice)
		return ok
	})
	wantLabels := map[string]string{"alertname": "ProcNumChkRed", "host": "moscow", "severity": "emergency", "case": "imapd",
		"user": "alice", "comm": "imapd", "team": "mail"}
	for k, v := range wantLabels {
		if got.Labels[k] != v {
			t.Errorf("label %s = %q, want %q (labels %v)", k, got.Labels[k], v, got.Labels)
		}
	}
	if len(got.Labels) != len(wantLabels) {
		t.Errorf("labels %v, want exactly %v (count is an annotation: it changes every evaluation)", got.Labels, wantLabels)
	}
	if got.Annotations["count"] != "93" || got.Annotations["summary"] == "" || got.Annotations["description"] != "comm=imapd count=93 user=alice" {
		t.Errorf("annotations %v", got.Annotations)
	}
	if got.GeneratorURL != "http://picket.example/rules/ProcNumChkRed" || got.Status.State != "active" {
		t.Errorf("generatorURL %q, state %q", got.GeneratorURL, got.Status.State)
	}
	if d := got.StartsAt.Sub(now.Add(-5 * time.Minute)); d < -time.Second || d > time.Second {
		t.Errorf("startsAt %v, want %v", got.StartsAt, now.Add(-5*time.Minute))
	}

	// Alice's storm is over: resolved (the rules engine sends the last
	// firing row with endsAt); bob's goes on.
	resolved := procBatch(alarm.Resolved, procRow("alice", "imapd", 93))
	resolved.Alarms[0].StartsAt, resolved.Alarms[0].EndsAt = now.Add(-5*time.Minute), time.Now()
	if err := n.Notify(ctx, resolved); err != nil {
		t.Fatalf("Notify resolved: %v", err)
	}
	eventually(t, "alice's alert to resolve", func() bool {
		_, ok := activeAlert(getAlerts(t, base, `alertname="ProcNumChkRed"`), alice)
		return !ok
	})
	if _, ok := activeAlert(getAlerts(t, base, ""), map[string]string{"user": "bob"}); !ok {
		t.Error("bob's alert resolved with alice's")
	}
}

// A label Alertmanager cannot take is refused at once, not retried.
func TestAlertmanagerRejectsAreReported(t *testing.T) {
	h := newHookServer(t, 400)
	n, err := New("am", &AlertmanagerSpec{URL: h.URL, Retries: intp(3)}, testEnv(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Notify(context.Background(), stormBatch()); !IsPermanent(err) || h.requests() != 1 {
		t.Fatalf("Notify = %v after %d requests", err, h.requests())
	}
	var posted []postableAlert
	if err := json.Unmarshal(h.bodies[0], &posted); err != nil || len(posted) != 3 {
		t.Fatalf("body %s (%v)", h.bodies[0], err)
	}
	if !posted[0].EndsAt.IsZero() || posted[0].Labels["user"] != "alice" {
		t.Errorf("first alert %+v", posted[0])
	}
}

func TestKeyFields(t *testing.T) {
	row := map[string]any{"user": "alice", "user_id": 1000, "comm": "a b", "count": 93}
	for _, tc := range []struct {
		key  string
		want []string
	}{
		{"user=alice comm=a b", []string{"comm", "user"}},
		{"user_id=1000 user=alice", []string{"user", "user_id"}},
		{"process_groups", nil},
		{"user=mallory comm=x", []string{"comm", "user"}}, // does not parse: string fields
	} {
		got := keyFields(alarm.Alarm{Key: tc.key, Row: row})
		if len(got) != len(tc.want) {
			t.Errorf("key %q: %v, want %v", tc.key, got, tc.want)
			continue
		}
		for _, k := range tc.want {
			if !got[k] {
				t.Errorf("key %q: %v, want %v", tc.key, got, tc.want)
			}
		}
	}
}
