package tui

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/picket-guard/picket/internal/doctor"
	"github.com/picket-guard/picket/internal/snapshot"
)

func TestDaemonFetch(t *testing.T) {
	snap := host(0, []snapshot.Group{grp("mail", 8, "imapd", 60)}, []snapshot.Holder{holder(1, "mail", "imapd", 2, 3)})
	rep := doctor.Run(doctor.Input{Cur: snap}, doctor.Checks())
	var findings http.HandlerFunc = func(w http.ResponseWriter, r *http.Request) { json.NewEncoder(w).Encode(rep) }
	mux := http.NewServeMux()
	mux.HandleFunc("/picket/api/v1/snapshot", func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet {
			t.Errorf("method %s", r.Method)
		}
		json.NewEncoder(w).Encode(snap)
	})
	mux.HandleFunc("/picket/api/v1/findings", func(w http.ResponseWriter, r *http.Request) { findings(w, r) })
	srv := httptest.NewServer(mux)
	defer srv.Close()

	d, err := NewDaemon(srv.URL+"/picket/", nil)
	if err != nil {
		t.Fatal(err)
	}
	if d.String() != "from "+srv.URL+"/picket" {
		t.Errorf("String() = %q", d.String())
	}
	got, gotRep, err := d.Fetch(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if got.Processes.Groups[0].Comm != "imapd" || !got.Time.Equal(snap.Time) || gotRep.Status != rep.Status || len(gotRep.Findings) != len(rep.Findings) || gotRep.Host != "test" {
		t.Errorf("fetched %+v / %+v", got.Processes, gotRep)
	}

	// Findings that fail still leave the snapshot to show.
	findings = func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
		w.Write([]byte(`{"error":"no collection yet: picket is starting"}`))
	}
	got, gotRep, err = d.Fetch(context.Background())
	if got == nil || gotRep != nil || err == nil || !strings.Contains(err.Error(), "503 Service Unavailable: no collection yet") {
		t.Errorf("findings 503: %v %v %v", got != nil, gotRep, err)
	}
	// A body that is not picket's error is not shown.
	findings = func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusBadGateway)
		w.Write([]byte("<html>\x1b[2J proxy error</html>"))
	}
	if _, _, err = d.Fetch(context.Background()); err == nil || strings.Contains(err.Error(), "html") || !strings.Contains(err.Error(), "502") {
		t.Errorf("502: %v", err)
	}
	findings = func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(`{"status": "ok", "findings": [`)) }
	if _, _, err = d.Fetch(context.Background()); err == nil || !strings.Contains(err.Error(), "/api/v1/findings") {
		t.Errorf("truncated JSON: %v", err)
	}

	for _, bad := range []string{"", "127.0.0.1:9749", "ftp://x", "http://", "::"} {
		if _, err := NewDaemon(bad, nil); err == nil {
			t.Errorf("NewDaemon(%q) accepted", bad)
		}
	}
}

// twoSamples serves a snapshot per call, counting the calls.
type twoSamples struct {
	snaps []*snapshot.Snapshot
	calls int
}

func (s *twoSamples) Fetch(context.Context) (*snapshot.Snapshot, *doctor.Report, error) {
	i := min(s.calls, len(s.snaps)-1)
	s.calls++
	return s.snaps[i], nil, nil
}

func (s *twoSamples) String() string { return "test" }

func TestWriteOnce(t *testing.T) {
	a := host(0, []snapshot.Group{grp("mail", 8, "imapd", 20)}, nil)
	b := host(1, []snapshot.Group{grp("mail", 8, "imapd", 60)}, nil)
	src := &twoSamples{snaps: []*snapshot.Snapshot{a, b}}
	var out bytes.Buffer
	if err := WriteOnce(context.Background(), &out, Options{Source: src, Interval: time.Millisecond}, 80); err != nil {
		t.Fatal(err)
	}
	if src.calls != 2 || !strings.Contains(out.String(), "60     +40") || !strings.HasSuffix(out.String(), "\n") {
		t.Errorf("%d calls:\n%s", src.calls, out.String())
	}
	// One sample: no change to show.
	src = &twoSamples{snaps: []*snapshot.Snapshot{a, b}}
	out.Reset()
	if err := WriteOnce(context.Background(), &out, Options{Source: src}, 80); err != nil {
		t.Fatal(err)
	}
	if src.calls != 1 || strings.Contains(out.String(), "+") || strings.ContainsAny(out.String(), "█▸↓…") {
		t.Errorf("%d calls, or not plain ASCII:\n%s", src.calls, out.String())
	}
	// Cancelled between the samples.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := WriteOnce(ctx, &out, Options{Source: &twoSamples{snaps: []*snapshot.Snapshot{a}}, Interval: time.Hour}, 80); err == nil {
		t.Error("cancelled WriteOnce returned nil")
	}
}
