package dashboard

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/picket-guard/picket/internal/collect"
	"github.com/picket-guard/picket/internal/server"
	"github.com/picket-guard/picket/internal/testkit"
	"github.com/picket-guard/picket/internal/testkit/hold"
)

// The test binary doubles as the hostile-named process of
// TestDashboardInChromium (testkit.StartSockets).
func TestMain(m *testing.M) { testkit.Main(m, nil) }

const (
	stormComm = "pkt-dashstorm"
	stormSize = 40
	// hostileComm would be markup if a page parsed it; it fits comm's 15
	// bytes.
	hostileComm = `<b>x</b>&"'`
	// hostileRule would run a script if a page parsed it.
	hostileRule  = `<img src=x onerror=alert(1)>`
	throttleID   = "20261123T025900-3f9c2a"
	chromiumPath = "/usr/bin/chromium"
)

// TestDashboardInChromium runs the page in Debian's headless Chromium
// against a real server whose source collects this host every 500ms: a
// storm the test starts appears in the groups table and its plot, a hostile
// command name and a hostile rule name render as text, nothing logs a
// console error, and screenshots are saved under testdata/out.
func TestDashboardInChromium(t *testing.T) {
	h := newHarness(t)

	// The storm: stormSize processes whose comm is stormComm.
	testkit.Sleepers(t, stormComm, stormSize, nil)
	// A process with a hostile name (one that holds no socket).
	testkit.StartSockets(t, hold.Spec{Comm: hostileComm}, nil)

	// The daemon's side: a collector every 500ms, a fake history of what
	// it saw, and a fixed journal.
	journal := fakeJournal(t, time.Now().UTC())
	hist := newFakeHistory()
	src := &liveSource{journal: journal, hist: hist}
	coll, err := collect.New(collect.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	const interval = 500 * time.Millisecond
	if err := src.collectOnce(ctx, coll, interval); err != nil {
		t.Fatal(err)
	}
	collected := make(chan struct{})
	go func() {
		defer close(collected)
		src.run(ctx, coll, interval)
	}()
	t.Cleanup(func() {
		cancel()
		<-collected
	})
	srv := serve(t, ctx, server.Options{Source: src, History: hist})

	hostileJSON, _ := json.Marshal([]string{hostileComm})
	h.run(t, ctx, "live", srv.Addr().String(),
		"DASH_STORM="+stormComm,
		fmt.Sprintf("DASH_STORM_N=%d", stormSize),
		"DASH_HOSTILE="+string(hostileJSON),
		"DASH_RULE="+hostileRule,
		"DASH_THROTTLE="+throttleID,
	)
}

// harness is the node side: testdata/e2e with playwright-core installed.
type harness struct {
	dir, node, chromium, out string
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: no browser")
	}
	h := &harness{chromium: testkit.Need(t, chromiumPath, "chromium"), node: testkit.Need(t, "node", "nodejs")}
	npm := testkit.Need(t, "npm", "npm")
	var err error
	if h.dir, err = filepath.Abs("testdata/e2e"); err != nil {
		t.Fatal(err)
	}
	if h.out, err = filepath.Abs(filepath.Join("testdata", "out")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(h.dir, "node_modules", "playwright-core")); err != nil {
		cmd := exec.Command(npm, "ci", "--no-audit", "--no-fund", "--loglevel=error")
		cmd.Dir = h.dir
		cmd.Env = append(os.Environ(), "PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("npm ci in %s: %v\n%s", h.dir, err, out)
		}
	}
	return h
}

// run drives the page at addr with dashboard.mjs in mode (live or
// fixture); its screenshots are testdata/out/dashboard-MODE*.png.
func (h *harness) run(t *testing.T, ctx context.Context, mode, addr string, env ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 4*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, h.node, filepath.Join(h.dir, "dashboard.mjs"))
	cmd.Dir = h.dir
	cmd.Env = append(os.Environ(), "DASH_MODE="+mode, "DASH_URL=http://"+addr+"/", "DASH_OUT="+h.out, "CHROMIUM="+h.chromium)
	cmd.Env = append(cmd.Env, env...)
	res, err := cmd.CombinedOutput()
	t.Logf("dashboard.mjs (%s):\n%s", mode, res)
	if err != nil {
		t.Fatalf("the dashboard failed in Chromium: %v", err)
	}
	if !strings.Contains(string(res), "dashboard: all checks passed") {
		t.Fatal("dashboard.mjs did not report its checks")
	}
	for _, f := range []string{"dashboard-" + mode + ".png", "dashboard-" + mode + "-phone.png"} {
		if st, err := os.Stat(filepath.Join(h.out, f)); err != nil || st.Size() < 10_000 {
			t.Errorf("screenshot %s: %v", f, err)
		}
	}
}

// serve starts a server on 127.0.0.1:0 until the test ends.
func serve(t *testing.T, ctx context.Context, opts server.Options) *server.Server {
	t.Helper()
	opts.Listen = "127.0.0.1:0"
	opts.Assets = Assets()
	srv, err := server.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(ctx)
	served := testkit.Serve(t, ctx, srv)
	t.Cleanup(func() {
		cancel()
		if err := <-served; err != nil {
			t.Errorf("server: %v", err)
		}
	})
	return srv
}

// fakeJournal is the API's journal, newest first: a throttle active until
// an hour from now under a hostile rule name, and a freeze that ended.
func fakeJournal(t *testing.T, now time.Time) json.RawMessage {
	t.Helper()
	b, err := json.Marshal([]map[string]any{
		{"id": throttleID, "time": now.Add(-time.Minute), "phase": "result", "type": "throttle", "rule": hostileRule, "case": "critical", "targets": []any{"tcp/993"}, "result": "throttled new connections to tcp/993"},
		{"id": throttleID, "time": now.Add(-time.Minute), "phase": "intent", "type": "throttle", "rule": hostileRule, "case": "critical", "targets": []any{"tcp/993"}, "undo": map[string]any{"proto": "tcp", "port": 993}, "until": now.Add(time.Hour)},
		{"id": "20261123T020000-aaaaaa", "time": now.Add(-30 * time.Minute), "phase": "revert", "type": "freeze", "rule": "storm", "result": "ended after 10m"},
		{"id": "20261123T020000-aaaaaa", "time": now.Add(-40 * time.Minute), "phase": "result", "type": "freeze", "rule": "storm", "targets": []any{4242, 4243}, "result": "froze 2 processes"},
		{"id": "20261123T020000-aaaaaa", "time": now.Add(-40 * time.Minute), "phase": "intent", "type": "freeze", "rule": "storm", "targets": []any{4242, 4243}, "undo": map[string]any{"method": "sigstop"}, "until": now.Add(-30 * time.Minute)},
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}
