package server

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestNonLoopbackNeedsToken(t *testing.T) {
	src := loadedSource(t)
	tok := writeToken(t, testToken, 0o600)
	for _, tt := range []struct {
		listen   string
		loopback bool
	}{
		{"", true},
		{"127.0.0.1:9749", true},
		{"127.0.0.1:0", true},
		{"127.10.0.1:9749", true},
		{"[::1]:9749", true},
		{"localhost:9749", true},
		{"0.0.0.0:9749", false},
		{":9749", false},
		{"[::]:9749", false},
		{"192.0.2.10:9749", false},
		{"[2001:db8::1]:9749", false},
		{"picket.example.net:9749", false},
		{"localhost.evil.test:9749", false},
	} {
		_, err := New(Options{Source: src, Listen: tt.listen})
		switch {
		case tt.loopback && err != nil:
			t.Errorf("%q: %v", tt.listen, err)
		case !tt.loopback && err == nil:
			t.Errorf("%q without a token file: accepted", tt.listen)
		case !tt.loopback && !strings.Contains(err.Error(), "without a token file") || err != nil && !strings.Contains(err.Error(), "loopback"):
			t.Errorf("%q: the error does not say why: %v", tt.listen, err)
		}
		if _, err := New(Options{Source: src, Listen: tt.listen, TokenFile: tok}); err != nil {
			t.Errorf("%q with a token file: %v", tt.listen, err)
		}
	}
	for _, bad := range []string{"9749", "127.0.0.1", "127.0.0.1:", "[::1"} {
		if _, err := New(Options{Source: src, Listen: bad}); err == nil {
			t.Errorf("listen %q: accepted", bad)
		}
	}
	if _, err := New(Options{}); err == nil {
		t.Errorf("no Source: accepted")
	}
}

func TestTokenFile(t *testing.T) {
	src := loadedSource(t)
	dir := t.TempDir()
	for _, tt := range []struct {
		name string
		path func() string
		want string // in the error; "" = accepted
	}{
		{"0600", func() string { return writeToken(t, testToken, 0o600) }, ""},
		{"0400", func() string { return writeToken(t, testToken, 0o400) }, ""},
		{"group-readable", func() string { return writeToken(t, testToken, 0o640) }, "mode 0640"},
		{"world-readable", func() string { return writeToken(t, testToken, 0o604) }, "mode 0604"},
		{"group-writable", func() string { return writeToken(t, testToken, 0o620) }, "chmod 600"},
		{"missing", func() string { return filepath.Join(dir, "nope") }, "no such file"},
		{"directory", func() string { return dir }, "not a regular file"},
		{"short", func() string { return writeToken(t, "hunter2", 0o600) }, "shorter than 16"},
		{"empty", func() string { return writeToken(t, "", 0o600) }, "shorter than 16"},
		{"two lines", func() string { return writeToken(t, testToken+"\n"+testToken, 0o600) }, "one line"},
		{"space", func() string { return writeToken(t, "s3cret token 0123456789", 0o600) }, "one line"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(Options{Source: src, TokenFile: tt.path()})
			if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
				t.Errorf("got %v, want %q", err, tt.want)
			}
		})
	}
	t.Run("someone else's", func(t *testing.T) {
		if os.Geteuid() != 0 {
			t.Skip("needs root to chown the file to another user")
		}
		p := writeToken(t, testToken, 0o600)
		if err := os.Chown(p, 65534, 65534); err != nil {
			t.Fatal(err)
		}
		if _, err := New(Options{Source: src, TokenFile: p}); err == nil || !strings.Contains(err.Error(), "owned by uid 65534") {
			t.Errorf("got %v", err)
		}
	})
}

func TestMutationAuth(t *testing.T) {
	tok := writeToken(t, testToken, 0o600)
	m := &fakeMutator{}
	h := newServer(t, Options{Source: loadedSource(t), Mutator: m, TokenFile: tok}).Handler()
	silence := func(hdr ...string) int {
		return do(t, h, "POST", "/api/v1/silence", strings.NewReader(`{"rule":"storm","duration":"2h"}`), hdr...).Code
	}
	undo := func(hdr ...string) int {
		return do(t, h, "POST", "/api/v1/undo/20261123T025900-3f9c2a", nil, hdr...).Code
	}
	for _, tt := range []struct {
		name string
		hdr  []string
		want int
	}{
		{"missing", nil, 401},
		{"empty bearer", []string{"Authorization", "Bearer "}, 401},
		{"basic", []string{"Authorization", "Basic " + testToken}, 401},
		{"bare token", []string{"Authorization", testToken}, 401},
		{"wrong", []string{"Authorization", "Bearer wrong-token-0123456789abcdef"}, 401},
		{"prefix", []string{"Authorization", "Bearer " + testToken[:20]}, 401},
		{"longer", []string{"Authorization", "Bearer " + testToken + "x"}, 401},
		{"token in another header", []string{"X-Token", testToken}, 401},
		{"right", []string{"Authorization", "Bearer " + testToken}, 200},
		{"scheme is case-insensitive", []string{"Authorization", "bearer " + testToken}, 200},
	} {
		if got := silence(tt.hdr...); got != tt.want {
			t.Errorf("silence, %s: %d, want %d", tt.name, got, tt.want)
		}
		if got := undo(tt.hdr...); got != tt.want {
			t.Errorf("undo, %s: %d, want %d", tt.name, got, tt.want)
		}
	}
	w := do(t, h, "POST", "/api/v1/silence", nil)
	if got := w.Header().Get("WWW-Authenticate"); !strings.HasPrefix(got, "Bearer") {
		t.Errorf("WWW-Authenticate %q", got)
	}
	if len(m.undone) != 2 || m.silenced["storm"] != 2*time.Hour {
		t.Errorf("mutator saw undo %v, silence %v", m.undone, m.silenced)
	}

	// The file is re-read: rotating the token takes effect at once, and a
	// file made readable by others since start-up fails closed.
	rotated := "rotated-token-abcdef0123456789"
	if err := os.WriteFile(tok, []byte(rotated), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := silence("Authorization", "Bearer "+testToken); got != 401 {
		t.Errorf("old token after rotation: %d", got)
	}
	if got := silence("Authorization", "Bearer "+rotated); got != 200 {
		t.Errorf("new token after rotation: %d", got)
	}
	if err := os.Chmod(tok, 0o644); err != nil {
		t.Fatal(err)
	}
	if got := silence("Authorization", "Bearer "+rotated); got != http.StatusServiceUnavailable {
		t.Errorf("token file made world-readable: %d", got)
	}
}

func TestMutationsOff(t *testing.T) {
	auth := []string{"Authorization", "Bearer " + testToken}
	// No token file (loopback): mutations are off even with a Mutator.
	h := newServer(t, Options{Source: loadedSource(t), Mutator: &fakeMutator{}}).Handler()
	if msg := jsonError(t, do(t, h, "POST", "/api/v1/undo/x1", nil, auth...), 403); !strings.Contains(msg, "token file") {
		t.Errorf("no token file: %q", msg)
	}
	// No Mutator: a read-only server.
	h = newServer(t, Options{Source: loadedSource(t), TokenFile: writeToken(t, testToken, 0o600)}).Handler()
	if msg := jsonError(t, do(t, h, "POST", "/api/v1/silence", strings.NewReader(`{"rule":"a","duration":"1h"}`), auth...), 403); !strings.Contains(msg, "read-only") {
		t.Errorf("no mutator: %q", msg)
	}
}

func TestUndo(t *testing.T) {
	m := &fakeMutator{}
	h := newServer(t, Options{Source: loadedSource(t), Mutator: m, TokenFile: writeToken(t, testToken, 0o600)}).Handler()
	auth := []string{"Authorization", "Bearer " + testToken}
	w := do(t, h, "POST", "/api/v1/undo/20261123T025900-3f9c2a", nil, auth...)
	if w.Code != 200 || w.Header().Get("Content-Type") != "application/json" || !strings.Contains(w.Body.String(), `"result":"undone"`) {
		t.Errorf("undo: %d %s", w.Code, w.Body)
	}
	for _, id := range []string{"a%20b", "..%2F..%2Fetc", "x%0Ay", strings.Repeat("a", 129), "%1B%5B31m"} {
		jsonError(t, do(t, h, "POST", "/api/v1/undo/"+id, nil, auth...), http.StatusBadRequest)
	}
	for _, tt := range []struct {
		err  error
		want int
	}{
		{fmt.Errorf("no action %q: %w", "x", ErrNotFound), 404},
		{fmt.Errorf("undo x: a kill cannot be undone"), 409},
		{fmt.Errorf("nft: %w", context.DeadlineExceeded), 504},
	} {
		m.undoErr = tt.err
		if msg := jsonError(t, do(t, h, "POST", "/api/v1/undo/x1", nil, auth...), tt.want); !strings.Contains(msg, tt.err.Error()) {
			t.Errorf("%v: %q", tt.err, msg)
		}
	}
}

func TestSilence(t *testing.T) {
	m := &fakeMutator{}
	now := fixtureTime
	h := newServer(t, Options{Source: loadedSource(t), Mutator: m, TokenFile: writeToken(t, testToken, 0o600), Now: func() time.Time { return now }}).Handler()
	auth := []string{"Authorization", "Bearer " + testToken}
	w := do(t, h, "POST", "/api/v1/silence", strings.NewReader(`{"rule":"tcp-orphans","duration":"90m"}`), auth...)
	var resp silenceResponse
	strictDecode(t, w.Body.String(), &resp)
	if w.Code != 200 || resp.Rule != "tcp-orphans" || resp.Duration != "1h30m0s" || !resp.Until.Equal(now.Add(90*time.Minute)) {
		t.Errorf("silence: %d %+v", w.Code, resp)
	}
	for _, body := range []string{
		``, `{`, `[]`, `{"rule":"a"}`, `{"duration":"1h"}`, `{"rule":"","duration":"1h"}`,
		`{"rule":"a","duration":"0s"}`, `{"rule":"a","duration":"-1h"}`, `{"rule":"a","duration":"500ms"}`,
		`{"rule":"a","duration":"721h"}`, `{"rule":"a","duration":3600}`, `{"rule":"a","duration":"1h","extra":1}`,
		`{"rule":"a\u001b[31m","duration":"1h"}`, `{"rule":"` + strings.Repeat("a", 257) + `","duration":"1h"}`,
		`{"rule":"a","duration":"1h","pad":"` + strings.Repeat("x", 5000) + `"}`,
	} {
		jsonError(t, do(t, h, "POST", "/api/v1/silence", strings.NewReader(body), auth...), http.StatusBadRequest)
	}
	jsonError(t, do(t, h, "POST", "/api/v1/silence", strings.NewReader(`{"rule":"no-such-rule","duration":"1h"}`), auth...), http.StatusNotFound)
	if len(m.silenced) != 1 {
		t.Errorf("silenced: %v", m.silenced)
	}
}
