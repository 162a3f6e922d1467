package dashboard

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/picket-guard/picket/internal/doctor"
	"github.com/picket-guard/picket/internal/server"
	"github.com/picket-guard/picket/internal/testkit"
	"github.com/picket-guard/picket/internal/testkit/snaptest"
)

// TestDashboardTokenPrompt: seen by a user other than root, the dashboard
// shows no process, asks for the token, says when it is wrong, and with
// the right one shows the host; the token stays in this tab's
// sessionStorage (not localStorage, not the URL) and goes out as the
// bearer header only. Chromium runs as root, so it reaches the server
// through a relay whose sockets nobody made: the server sees nobody.
func TestDashboardTokenPrompt(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: relays the browser's connections as nobody; CI runs as root")
	}
	h := newHarness(t)
	const token = "dash-token-0123456789abcdef"
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Second)
	snap := snaptest.Fixture(t, "imapd-storm")
	snap.Time = now
	rep := doctor.Run(doctor.Input{Cur: snap}, doctor.Checks())
	hist := newFakeHistory()
	hist.record(snap)
	src := &liveSource{snap: snap, report: &rep, journal: json.RawMessage("[]"), hist: hist,
		health: server.Health{LastCollection: now, LastDuration: 80 * time.Millisecond, Config: "fixture"}}
	srv := serve(t, context.Background(), server.Options{Source: src, History: hist, TokenFile: tokenFile})
	relay := relayAs(t, 65534, srv.Addr().String())

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, h.node, filepath.Join(h.dir, "token.mjs"))
	cmd.Dir = h.dir
	cmd.Env = append(os.Environ(), "DASH_URL=http://"+relay+"/", "DASH_OUT="+h.out, "CHROMIUM="+h.chromium, "DASH_TOKEN="+token)
	res, err := cmd.CombinedOutput()
	t.Logf("token.mjs:\n%s", res)
	if err != nil || !strings.Contains(string(res), "token: all checks passed") {
		t.Fatalf("the token prompt failed in Chromium: %v", err)
	}
}

// relayAs listens on 127.0.0.1 and relays every connection to target
// over a socket made by uid, until the test ends.
func relayAs(t *testing.T, uid int, target string) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	track := func(c net.Conn) {
		mu.Lock()
		conns = append(conns, c)
		mu.Unlock()
	}
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			in, err := l.Accept()
			if err != nil {
				return
			}
			track(in)
			out, err := testkit.DialAs(context.Background(), uid, target)
			if err != nil {
				t.Errorf("relay: %v", err)
				in.Close()
				continue
			}
			track(out)
			wg.Add(2)
			pipe := func(dst, src net.Conn) {
				defer wg.Done()
				io.Copy(dst, src)
				dst.(*net.TCPConn).CloseWrite()
			}
			go pipe(out, in)
			go pipe(in, out)
		}
	}()
	return l.Addr().String()
}
