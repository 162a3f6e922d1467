package fleettest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/picket-guard/picket/internal/testkit"
)

// The fleet of docs/fleet.md, for real: three hosts, each a network
// namespace (on a bridge of the test's) and a pid namespace with its own
// `picket run --host NAME`; in a monitoring namespace on the same bridge,
// Debian's Prometheus scraping them through file_sd with the shipped
// rules, two Alertmanagers clustered on its loopback, both in picket's
// alertmanager output and in Prometheus's alerting, and a webhook
// receiver in the test. Then:
//
//   - an imapd storm (60 fleet-imapd of nobody) on alpha makes one
//     notification group, for alpha,
//     with picket's own alert (ImapdStorm) and Prometheus's alert over
//     picket's metrics (PicketFindingWarning, check process-storm)
//     together; beta and gamma get nothing about it;
//   - with one Alertmanager stopped, a storm on gamma still arrives;
//   - SIGKILL beta's picket: PicketDown fires for beta alone;
//   - the stopped Alertmanager back, gamma's picket delivers to it what it
//     missed, from its spool;
//   - no notification arrives twice (the cluster deduplicates).
//
// The shipped rules run unchanged but for their `for:` durations (4s,
// two scrapes, instead of minutes, to fit the test in its bound; but
// PicketTargetsMissing's, as nothing is up before the first scrape). The
// whole test is bounded: every wait ends by two minutes after its start.
func TestFleet(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the fleet test makes network and pid namespaces: run as root (scripts/test does in CI)")
	}
	if testing.Short() {
		t.Skip("the fleet test runs real Prometheus and Alertmanagers for about a minute")
	}
	prometheus := testkit.Need(t, "prometheus", "prometheus")
	alertmanager := testkit.Need(t, "prometheus-alertmanager", "prometheus-alertmanager")
	testkit.Need(t, "ip", "iproute2")
	testkit.Need(t, "unshare", "util-linux")
	began := time.Now()
	bound := began.Add(115 * time.Second)
	dir := t.TempDir()
	picket := buildPicket(t, dir)
	t.Logf("picket built in %v", time.Since(began).Round(time.Millisecond))
	imapd := filepath.Join(testkit.NamedBin(t, stormComm), stormComm)

	mon, bridgeIP, hosts := makeNetwork(t, []string{"alpha", "beta", "gamma"})
	monPath := "/run/netns/" + mon
	client := clientIn(monPath)
	hook := newReceiver(t, monPath, bound)

	// Two Alertmanagers in the monitoring namespace, gossiping on its
	// loopback; their APIs on the bridge, where the hosts' pickets reach
	// them. The namespace is new: every port is free.
	amConfig := filepath.Join(dir, "alertmanager.yml")
	writeFile(t, amConfig, fmt.Sprintf(`route:
  receiver: hook
  group_by: [host]
  group_wait: 1s
  group_interval: 2s
  repeat_interval: 1h
receivers:
  - name: hook
    webhook_configs:
      - url: %s
        send_resolved: false
`, hook.url))
	gossip := []string{"127.0.0.1:9094", "127.0.0.1:9096"}
	amURLs := []string{"http://" + bridgeIP + ":9093", "http://" + bridgeIP + ":9095"}
	var ams []*daemon
	startAM := func(i int, name string) *daemon {
		web := strings.TrimPrefix(amURLs[i], "http://")
		return startDaemon(t, client, mon, name, dir, amURLs[i]+"/-/ready", alertmanager,
			"--config.file="+amConfig,
			"--storage.path="+filepath.Join(dir, fmt.Sprintf("am%d", i+1)),
			"--web.listen-address="+web,
			"--cluster.listen-address="+gossip[i],
			"--cluster.peer="+gossip[1-i],
			// The second in line waits this long for the first's
			// notification to reach it before sending its own.
			"--cluster.peer-timeout=3s",
			"--cluster.pushpull-interval=5s",
			// The first to start finds no peer: it tries again this often.
			"--cluster.reconnect-interval=1s",
			"--log.level=warn")
	}
	for i := range 2 {
		ams = append(ams, startAM(i, fmt.Sprintf("alertmanager%d", i+1)))
	}

	// The cluster formed: each member knows the other. Before that each
	// would think itself first and send alone.
	for _, u := range amURLs {
		testkit.Eventually(t, 30*time.Second, "a cluster of two at "+u, func() bool { return clusterPeers(client, u) == 2 })
	}
	t.Logf("Alertmanager cluster formed %v after the start", time.Since(began).Round(time.Millisecond))

	// One configuration for every host.
	cfg := filepath.Join(dir, "picket.yaml")
	writeFile(t, cfg, fmt.Sprintf(`hosts:
  alpha: {}
  beta: {}
  gamma: {}
outputs:
  alertmanagers:
    alertmanager: {urls: [%s, %s], timeout: 2s, retries: 0}
rules:
  - name: ImapdStorm
    level: critical
    every: 1s
    table: process_groups
    where: comm matches "imapd"
    message: "{{.user}} runs {{.count}} {{.comm}} processes on {{.host.name}}"
    cases:
      - name: storm
        if: count >= 30
        then: [alertmanagers]
`, amURLs[0], amURLs[1]))
	token := filepath.Join(dir, "token")
	writeFile(t, token, "fleet-test-token-0123456789abcdefghijklmnop\n")

	// Prometheus: the hosts from a file_sd file, labelled host as each
	// picket names itself; the shipped rules.
	var targets []map[string]any
	for _, h := range hosts {
		targets = append(targets, map[string]any{"targets": []string{h.addr + ":9749"}, "labels": map[string]string{"host": h.name}})
	}
	tj, _ := json.Marshal(targets)
	writeFile(t, filepath.Join(dir, "targets", "picket.json"), string(tj))
	rules, err := os.ReadFile(testkit.RepoPath(t, "packaging/prometheus/picket-rules.yml"))
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "picket-rules.yml"), shortenFor(string(rules), "4s", "PicketTargetsMissing"))
	promWeb := "127.0.0.1:9090"
	writeFile(t, filepath.Join(dir, "prometheus.yml"), fmt.Sprintf(`global:
  scrape_interval: 2s
  scrape_timeout: 2s
  evaluation_interval: 1s
rule_files: [picket-rules.yml]
alerting:
  alertmanagers:
    - static_configs:
        - targets: [%q, %q]
scrape_configs:
  - job_name: picket
    file_sd_configs:
      - files: [%q]
        refresh_interval: 1s
`, strings.TrimPrefix(amURLs[0], "http://"), strings.TrimPrefix(amURLs[1], "http://"), filepath.Join(dir, "targets", "*.json")))

	for _, h := range hosts {
		h.start(t, picket, imapd, []string{"run", "--config", cfg, "--host", h.name, "--listen", h.addr + ":9749",
			"--token-file", token, "--state-dir", filepath.Join(dir, "state-"+h.name), "--interval", "1s"})
	}
	startDaemon(t, client, mon, "prometheus", dir, "http://"+promWeb+"/-/ready", prometheus,
		"--config.file="+filepath.Join(dir, "prometheus.yml"),
		"--storage.tsdb.path="+filepath.Join(dir, "tsdb"),
		"--web.listen-address="+promWeb,
		"--log.level=warn")
	testkit.Eventually(t, 30*time.Second, "three picket targets up in Prometheus", func() bool {
		return len(query(client, promWeb, `up{job="picket"} == 1`)) == 3
	})
	t.Logf("fleet up %v after the start", time.Since(began).Round(time.Millisecond))

	// An imapd storm on alpha.
	byName := map[string]*host{}
	for _, h := range hosts {
		byName[h.name] = h
	}
	stormStart := time.Now()
	byName["alpha"].do(t, "storm 60")
	storm := func(n notification) bool {
		return n.has(map[string]string{"alertname": "ImapdStorm"}) && n.has(map[string]string{"alertname": "PicketFindingWarning", "check": "process-storm"})
	}
	alpha := hook.wait(t, 45*time.Second, "alpha's storm: picket's alert and Prometheus's in one notification", func(n notification) bool {
		return n.GroupLabels["host"] == "alpha" && storm(n)
	})
	t.Logf("alpha's storm notified %v after it began", time.Since(stormStart).Round(time.Millisecond))
	for _, a := range alpha.Alerts {
		if a.Labels["host"] != "alpha" || a.Labels["severity"] == "" {
			t.Errorf("alert in alpha's group: %v", a.Labels)
		}
	}
	time.Sleep(3 * time.Second) // a group_interval more, for anything that would come after
	groups := map[string]bool{}
	for _, n := range hook.all() {
		aboutStorm := n.has(map[string]string{"alertname": "ImapdStorm"}) || n.has(map[string]string{"check": "process-storm"})
		if aboutStorm {
			groups[n.GroupKey] = true
			if n.GroupLabels["host"] != "alpha" {
				t.Errorf("a storm notification for %s: %s", n.GroupLabels["host"], n)
			}
		}
	}
	if len(groups) != 1 {
		t.Errorf("alpha's storm came in %d notification groups, want one: %v", len(groups), groups)
	}

	// One Alertmanager down: gamma's storm still arrives, from picket
	// directly and from Prometheus, through the other one.
	ams[0].stop(t)
	byName["gamma"].do(t, "storm 60")
	hook.wait(t, 45*time.Second, "gamma's storm with one Alertmanager down", func(n notification) bool {
		return n.GroupLabels["host"] == "gamma" && storm(n)
	})

	// beta's picket dies without a word: Prometheus notices.
	killed := time.Now()
	byName["beta"].do(t, "kill")
	down := map[string]string{"alertname": "PicketDown", "host": "beta"}
	hook.wait(t, 30*time.Second, "PicketDown for beta", func(n notification) bool { return n.has(down) })
	t.Logf("PicketDown for beta notified %v after its picket was killed", time.Since(killed).Round(time.Millisecond))

	// The stopped Alertmanager is back: gamma's picket delivers what it
	// missed from its spool (its member's own batches, retried with
	// backoff). Alertmanagers do not gossip alerts, so only picket can
	// have brought it there.
	back := time.Now()
	startAM(0, "alertmanager1-again")
	missed := map[string]string{"alertname": "ImapdStorm", "host": "gamma"}
	testkit.Eventually(t, min(60*time.Second, time.Until(bound)), "gamma's storm alert delivered from picket's spool to the Alertmanager that was down", func() bool {
		return hasAlert(client, amURLs[0], missed)
	})
	t.Logf("the returning Alertmanager had gamma's alert %v after its start", time.Since(back).Round(time.Millisecond))
	time.Sleep(3 * time.Second)

	// Every alert is one this test caused, for the host it caused it on,
	// or the machine's: the hosts are namespaces on one kernel, so what
	// that kernel says for all of them (its log, its cgroup tree, its
	// memory, the other tests running beside this one) reaches every
	// host's picket alike.
	expected := map[string][]string{
		"alpha": {"ImapdStorm", "process-storm"},
		"gamma": {"ImapdStorm", "process-storm"},
		"beta":  {"PicketDown"},
	}
	hostsOf := map[string]map[string]bool{}
	for _, n := range hook.all() {
		for _, a := range n.Alerts {
			k := alertKind(a.Labels)
			if hostsOf[k] == nil {
				hostsOf[k] = map[string]bool{}
			}
			hostsOf[k][a.Labels["host"]] = true
		}
	}
	seen := map[string]int{}
	for _, n := range hook.all() {
		for _, a := range n.Alerts {
			k := alertKind(a.Labels)
			if machineWide(a.Labels) || len(hostsOf[k]) > 1 && !slices.Contains(expected["alpha"], k) && !slices.Contains(expected["beta"], k) {
				continue
			}
			if !slices.Contains(expected[a.Labels["host"]], k) {
				t.Errorf("%s for %s, which had nothing of the kind: %s", k, a.Labels["host"], n)
			}
		}
		seen[n.identity()]++
	}
	for id, c := range seen {
		if c > 1 {
			t.Errorf("notification sent %d times (the cluster should deduplicate): %s", c, id)
		}
	}
	t.Logf("%d notifications in %v", len(hook.all()), time.Since(began).Round(time.Millisecond))
	for _, n := range hook.all() {
		t.Logf("notification: %s", n)
	}
	if t.Failed() {
		for _, h := range hosts {
			b, _ := os.ReadFile(h.log)
			t.Logf("%s's picket:\n%s", h.name, lastLines(b, 30))
		}
	}
}

// shortenFor sets every alert's `for:` in rules to d, but for the alerts
// named in keep: PicketTargetsMissing keeps its minutes, as no target is
// up before Prometheus's first scrape.
func shortenFor(rules, d string, keep ...string) string {
	alert := regexp.MustCompile(`^\s*- alert: (\S+)$`)
	forLine := regexp.MustCompile(`^(\s+for:) \S+$`)
	lines := strings.Split(rules, "\n")
	name := ""
	for i, l := range lines {
		if m := alert.FindStringSubmatch(l); m != nil {
			name = m[1]
		}
		if forLine.MatchString(l) && !slices.Contains(keep, name) {
			lines[i] = forLine.ReplaceAllString(l, "$1 "+d)
		}
	}
	return strings.Join(lines, "\n")
}

// alertKind names what an alert is about: its check if it has one (a
// finding), else its alertname.
func alertKind(labels map[string]string) string {
	if c := labels["check"]; c != "" {
		return c
	}
	return labels["alertname"]
}

// machineWide says whether an alert is about what the test's hosts share:
// one kernel's log, cgroup tree, memory and limits (pid_max, file-max,
// tcp_mem...).
func machineWide(labels map[string]string) bool {
	switch labels["check"] {
	case "kernel-log", "cgroup-limits", "memory-thrashing", "fd-exhaustion", "tcp-memory", "beancounters":
		return true
	}
	return strings.HasPrefix(labels["alertname"], "PicketLimit") || labels["alertname"] == "PicketKernelMessages"
}

// buildPicket builds the static binary an administrator installs.
func buildPicket(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "picket")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/picket")
	cmd.Dir = testkit.RepoPath(t, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build picket: %v\n%s", err, out)
	}
	return bin
}

// makeNetwork makes a monitoring network namespace holding a bridge and,
// for each name, a host's network namespace joined to the bridge by a
// veth pair made inside the monitoring one, with loopback up everywhere.
// Nothing is added to the machine's own namespace (see netns_test.go).
// It returns the monitoring namespace's name, the bridge's address and
// the hosts.
func makeNetwork(t *testing.T, names []string) (string, string, []*host) {
	t.Helper()
	id := os.Getpid() % 100000
	const net3 = "10.249.0"
	ip := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	netns := func(name string) {
		ip("netns", "add", name)
		t.Cleanup(func() { exec.Command("ip", "netns", "del", name).Run() })
		ip("-n", name, "link", "set", "lo", "up")
	}
	mon := fmt.Sprintf("pkt-fleet-%d-mon", id)
	netns(mon)
	ip("-n", mon, "link", "add", "br0", "type", "bridge")
	ip("-n", mon, "addr", "add", net3+".1/24", "dev", "br0")
	ip("-n", mon, "link", "set", "br0", "up")
	var hosts []*host
	for i, name := range names {
		ns := fmt.Sprintf("pkt-fleet-%d-%s", id, name)
		netns(ns)
		port := fmt.Sprintf("veth%d", i)
		ip("-n", mon, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", ns)
		ip("-n", mon, "link", "set", port, "master", "br0", "up")
		addr := fmt.Sprintf("%s.%d", net3, 11+i)
		ip("-n", ns, "addr", "add", addr+"/24", "dev", "eth0")
		ip("-n", ns, "link", "set", "eth0", "up")
		hosts = append(hosts, &host{name: name, ns: ns, addr: addr, log: filepath.Join(t.TempDir(), name+".log")})
	}
	return mon, net3 + ".1", hosts
}

// daemon is a server the test runs (Prometheus, an Alertmanager).
type daemon struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
	log  string
}

// startDaemon runs bin in the network namespace ns and waits until ready
// answers 200 through client.
func startDaemon(t *testing.T, client *http.Client, ns, name, dir, ready, bin string, args ...string) *daemon {
	t.Helper()
	d := &daemon{name: name, log: filepath.Join(dir, name+".log"), done: make(chan struct{})}
	logf, err := os.Create(d.log)
	if err != nil {
		t.Fatal(err)
	}
	d.cmd = exec.Command("ip", append([]string{"netns", "exec", ns, bin}, args...)...) // ip execs bin: same pid
	d.cmd.Stdout, d.cmd.Stderr = logf, logf
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := d.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() { d.cmd.Wait(); logf.Close(); close(d.done) }()
	t.Cleanup(func() { d.stop(t) })
	testkit.Eventually(t, 30*time.Second, name+" ready", func() bool {
		select {
		case <-d.done:
			b, _ := os.ReadFile(d.log)
			t.Fatalf("%s exited:\n%s", name, b)
		default:
		}
		resp, err := client.Get(ready)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return d
}

// stop ends the daemon (SIGTERM, then SIGKILL after 5s).
func (d *daemon) stop(t *testing.T) {
	select {
	case <-d.done:
		return
	default:
	}
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
	case <-time.After(5 * time.Second):
		d.cmd.Process.Kill()
		<-d.done
	}
}

// notification is what Alertmanager's webhook posts.
type notification struct {
	Status      string            `json:"status"`
	GroupKey    string            `json:"groupKey"`
	GroupLabels map[string]string `json:"groupLabels"`
	Alerts      []struct {
		Status      string            `json:"status"`
		Labels      map[string]string `json:"labels"`
		Fingerprint string            `json:"fingerprint"`
	} `json:"alerts"`
}

func (n notification) has(labels map[string]string) bool {
next:
	for _, a := range n.Alerts {
		for k, v := range labels {
			if a.Labels[k] != v {
				continue next
			}
		}
		return true
	}
	return false
}

// identity is what two copies of one notification share: the group and
// the alerts in it, each with its status.
func (n notification) identity() string {
	var as []string
	for _, a := range n.Alerts {
		as = append(as, a.Fingerprint+"/"+a.Status)
	}
	sort.Strings(as)
	return n.GroupKey + " " + strings.Join(as, ",")
}

func (n notification) String() string {
	var as []string
	for _, a := range n.Alerts {
		as = append(as, fmt.Sprintf("%s%v", a.Status, a.Labels))
	}
	return fmt.Sprintf("group %s %v: %s", n.GroupKey, n.GroupLabels, strings.Join(as, "; "))
}

// receiver is the webhook Alertmanager notifies, on the monitoring
// namespace's loopback.
type receiver struct {
	url   string
	bound time.Time // no wait goes past it
	mu    sync.Mutex
	got   []notification
}

func newReceiver(t *testing.T, ns string, bound time.Time) *receiver {
	t.Helper()
	l, err := listenIn(ns, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &receiver{url: "http://" + l.Addr().String() + "/", bound: bound}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		var n notification
		var buf bytes.Buffer
		buf.ReadFrom(req.Body)
		if err := json.Unmarshal(buf.Bytes(), &n); err != nil {
			t.Errorf("webhook: %v\n%s", err, buf.Bytes())
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		r.mu.Lock()
		r.got = append(r.got, n)
		r.mu.Unlock()
	})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return r
}

func (r *receiver) all() []notification {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.got)
}

func (r *receiver) wait(t *testing.T, limit time.Duration, what string, cond func(notification) bool) notification {
	t.Helper()
	var found notification
	deadline := time.Now().Add(limit)
	if deadline.After(r.bound) {
		deadline = r.bound
	}
	for {
		for _, n := range r.all() {
			if cond(n) {
				return n
			}
		}
		if time.Now().After(deadline) {
			for _, n := range r.all() {
				t.Logf("notification: %s", n)
			}
			t.Fatalf("no notification for %s within %v (or the test's bound)", what, limit)
			return found
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// hasAlert says whether the Alertmanager at base holds an active alert
// with labels.
func hasAlert(c *http.Client, base string, labels map[string]string) bool {
	resp, err := c.Get(base + "/api/v2/alerts?active=true")
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	var alerts []struct {
		Labels map[string]string `json:"labels"`
	}
	if json.NewDecoder(resp.Body).Decode(&alerts) != nil {
		return false
	}
next:
	for _, a := range alerts {
		for k, v := range labels {
			if a.Labels[k] != v {
				continue next
			}
		}
		return true
	}
	return false
}

// clusterPeers is how many members the Alertmanager at base counts in its
// cluster (itself included), -1 if it does not say.
func clusterPeers(c *http.Client, base string) int {
	resp, err := c.Get(base + "/api/v2/status")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	var st struct {
		Cluster struct {
			Status string            `json:"status"`
			Peers  []json.RawMessage `json:"peers"`
		} `json:"cluster"`
	}
	if json.NewDecoder(resp.Body).Decode(&st) != nil || st.Cluster.Status != "ready" {
		return -1
	}
	return len(st.Cluster.Peers)
}

// query runs an instant query on Prometheus.
func query(c *http.Client, web, q string) []json.RawMessage {
	resp, err := c.Get("http://" + web + "/api/v1/query?query=" + url.QueryEscape(q))
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	var out struct {
		Data struct {
			Result []json.RawMessage `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return nil
	}
	return out.Data.Result
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func lastLines(b []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
