package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/picket-guard/picket/internal/secpath"
)

// minTokenLen refuses tokens short enough to guess over the network.
const minTokenLen = 16

// tokenFile is re-read on every request that sends a token, so rotating the token is
// writing the file (no restart), and a file that has become unsafe since
// start-up fails closed.
type tokenFile struct{ path string }

// read returns the token after checking the file (secpath.Token).
func (t *tokenFile) read() (string, error) {
	tok, err := secpath.Token(t.path, minTokenLen)
	if err != nil {
		return "", fmt.Errorf("token file: %w", err)
	}
	return tok, nil
}

// mutating guards an endpoint that changes the daemon: it needs a Mutator,
// a token file, and the token in "Authorization: Bearer TOKEN".
func (s *Server) mutating(h func(http.ResponseWriter, *http.Request, Mutator)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.opts.Mutator == nil {
			writeError(w, http.StatusForbidden, "this server is read-only")
			return
		}
		if s.token == nil {
			writeError(w, http.StatusForbidden, "mutations are off: picket was started without a token file")
			return
		}
		if d := s.checkBearer(r); d != nil {
			d.write(w)
			return
		}
		h(w, r, s.opts.Mutator)
	})
}

// validID is an action id as act writes them ("20260428T101500-3f9c2a"),
// with room to change.
func validID(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.' || c == ':') {
			return false
		}
	}
	return true
}

func (s *Server) undo(w http.ResponseWriter, r *http.Request, m Mutator) {
	id := r.PathValue("id")
	if !validID(id) {
		writeError(w, http.StatusBadRequest, "bad action id: want letters, digits and -_.: (at most 128)")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), mutateTimeout)
	defer cancel()
	s.log.Info("undo requested", "id", id, "remote", r.RemoteAddr)
	res, err := m.Undo(ctx, id)
	if err != nil {
		s.log.Warn("undo failed", "id", id, "err", err)
		writeError(w, mutationStatus(err), "undo "+id+": "+err.Error())
		return
	}
	if len(res) == 0 || !json.Valid(res) {
		writeJSON(w, http.StatusOK, struct {
			ID string `json:"id"`
		}{id})
		return
	}
	writeRaw(w, http.StatusOK, append(append([]byte(nil), res...), '\n'))
}

// mutationStatus maps a Mutator's error to a status: 404 for what does not
// exist, 504 when the daemon did not finish in time, and 409 for a refusal
// (not undoable, already reverted, failed to revert).
func mutationStatus(err error) int {
	switch {
	case errors.Is(err, ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, context.DeadlineExceeded):
		return http.StatusGatewayTimeout
	}
	return http.StatusConflict
}

// maxSilence bounds a silence: a forgotten one must end.
const maxSilence = 30 * 24 * time.Hour

type silenceRequest struct {
	Rule string `json:"rule"`
	// Duration is a Go duration ("90m", "2h").
	Duration string `json:"duration"`
}

type silenceResponse struct {
	Rule     string    `json:"rule"`
	Duration string    `json:"duration"`
	Until    time.Time `json:"until"`
}

func (s *Server) silence(w http.ResponseWriter, r *http.Request, m Mutator) {
	var req silenceRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, `body: want {"rule": NAME, "duration": "1h"}: `+err.Error())
		return
	}
	if req.Rule == "" || len(req.Rule) > 256 || !utf8.ValidString(req.Rule) || strings.ContainsFunc(req.Rule, func(c rune) bool { return c < ' ' || c == 0x7f }) {
		writeError(w, http.StatusBadRequest, "rule: want a rule name")
		return
	}
	d, err := time.ParseDuration(req.Duration)
	if err != nil || d < time.Second || d > maxSilence {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("duration %q: want a Go duration between 1s and %s, e.g. \"2h\"", req.Duration, maxSilence))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), mutateTimeout)
	defer cancel()
	s.log.Info("silence requested", "rule", req.Rule, "for", d.String(), "remote", r.RemoteAddr)
	if err := m.Silence(ctx, req.Rule, d); err != nil {
		s.log.Warn("silence failed", "rule", req.Rule, "err", err)
		writeError(w, mutationStatus(err), "silence "+req.Rule+": "+err.Error())
		return
	}
	writeJSON(w, http.StatusOK, silenceResponse{Rule: req.Rule, Duration: d.String(), Until: s.opts.Now().Add(d).UTC()})
}
