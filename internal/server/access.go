package server

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"sync"

	"github.com/picket-guard/picket/internal/collect"
)

// Who may read what (docs/api.md has the table). picket runs as root and
// sees what only root may read: every process's open files and the sockets
// among them, what an action printed, what a check found and where. Any
// local user can connect to 127.0.0.1, so the loopback listener alone
// protects nothing from the users of the host itself.
//
// Public, as node_exporter is: /healthz, the dashboard's files, and in
// /metrics and the history what a user could count from /proc and /sys
// without privilege (host totals and limits, user × command groups,
// cgroups). Private: the snapshot, findings, alarms, journal, and the
// per-process socket and descriptor numbers in /metrics and the history.
//
// A private answer goes to a request that carries the token, or that comes
// over loopback TCP on a socket made by root or by picket's own user: the
// administrator's `sudo picket top --from` and root's browser need no
// token. The kernel says who made the client's socket (collect.SocketOwner);
// a user cannot make a socket that the kernel says is root's.
//
// Mutations need the token even from root: a page in root's browser can
// POST to 127.0.0.1 from any origin (a form needs no CORS), while it cannot
// read the answer of a GET. The token is what a page of another origin
// cannot send.

// denial is why a request may not read a private answer.
type denial struct {
	status int
	msg    string
	// bearer asks for the token (WWW-Authenticate); invalid says the one
	// sent was wrong.
	bearer, invalid bool
}

func (d *denial) write(w http.ResponseWriter) {
	if d.bearer {
		v := `Bearer realm="picket"`
		if d.invalid {
			v += `, error="invalid_token"`
		}
		w.Header().Set("WWW-Authenticate", v)
	}
	writeError(w, d.status, d.msg)
}

// authorize says whether r may read private answers; nil means it may.
func (s *Server) authorize(r *http.Request) *denial {
	if r.Header.Get("Authorization") != "" && s.token != nil {
		return s.checkBearer(r)
	}
	if uid, ok := s.peerUID(r); ok && (uid == 0 || int(uid) == os.Geteuid()) {
		return nil
	}
	if s.token == nil {
		return &denial{status: http.StatusForbidden, msg: "this shows what only root can read: connect as root on this host (sudo picket top --from " + s.exampleURL() + "); this picket has no token file for anyone else"}
	}
	return &denial{status: http.StatusUnauthorized, bearer: true, msg: "this shows what only root can read: send Authorization: Bearer TOKEN (the token file picket was started with; picket top --token-file FILE), or connect as root on this host"}
}

func (s *Server) exampleURL() string {
	if a := s.Addr(); a != nil {
		return "http://" + a.String()
	}
	return "http://" + s.opts.Listen
}

// checkBearer compares the request's bearer token with the token file's,
// re-read now so that a rotated token holds at once.
func (s *Server) checkBearer(r *http.Request) *denial {
	want, err := s.token.read()
	if err != nil {
		s.log.Error("request refused: token file unusable", "err", err)
		return &denial{status: http.StatusServiceUnavailable, msg: "the token file is unusable; see picket's log"}
	}
	scheme, got, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || got == "" {
		return &denial{status: http.StatusUnauthorized, bearer: true, msg: "missing Authorization: Bearer token"}
	}
	// Comparing hashes keeps the comparison constant-time whatever the
	// lengths (ConstantTimeCompare returns at once on unequal lengths).
	g, wt := sha256.Sum256([]byte(got)), sha256.Sum256([]byte(want))
	if subtle.ConstantTimeCompare(g[:], wt[:]) != 1 {
		s.log.Warn("request with a wrong token", "remote", r.RemoteAddr, "path", r.URL.Path)
		return &denial{status: http.StatusUnauthorized, bearer: true, invalid: true, msg: "wrong token"}
	}
	return nil
}

// peerUID is the uid that made the client's socket, when the request came
// over loopback TCP. Beyond loopback the address may be anyone's (the
// kernel drops packets from outside claiming a loopback source,
// ip_route_input_slow's martian check).
//
// A connection's answer is kept for its later requests (a dashboard's
// kept-alive connection asks every few seconds): the socket and its owner
// stay the same while the connection lasts.
func (s *Server) peerUID(r *http.Request) (uint32, bool) {
	p, _ := r.Context().Value(peerKey{}).(*peerOwner)
	if p != nil {
		p.mu.Lock()
		defer p.mu.Unlock()
		if p.known {
			return p.uid, true
		}
	}
	uid, ok := s.lookupPeer(r)
	if ok && p != nil {
		p.uid, p.known = uid, true
	}
	return uid, ok
}

// peerKey is the context key of a connection's peerOwner.
type peerKey struct{}

// peerOwner is the owner of a connection's client socket once looked up
// (failures are not kept: the next request asks again).
type peerOwner struct {
	mu    sync.Mutex
	uid   uint32
	known bool
}

// connContext gives every accepted connection a peerOwner
// (http.Server.ConnContext).
func (s *Server) connContext(ctx context.Context, _ net.Conn) context.Context {
	return context.WithValue(ctx, peerKey{}, &peerOwner{})
}

func (s *Server) lookupPeer(r *http.Request) (uint32, bool) {
	remote, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil || !remote.Addr().Unmap().IsLoopback() {
		return 0, false
	}
	la, ok := r.Context().Value(http.LocalAddrContextKey).(*net.TCPAddr)
	if !ok {
		return 0, false
	}
	uid, err := collect.SocketOwner(remote, la.AddrPort())
	if err != nil {
		s.log.Debug("client socket owner unknown", "remote", r.RemoteAddr, "err", err)
		return 0, false
	}
	return uid, true
}

// private serves h only to a request authorize lets through.
func (s *Server) private(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if d := s.authorize(r); d != nil {
			d.write(w)
			return
		}
		h.ServeHTTP(w, r)
	})
}
