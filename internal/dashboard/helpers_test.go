package dashboard

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/picket-guard/picket/internal/alarm"
	"github.com/picket-guard/picket/internal/collect"
	"github.com/picket-guard/picket/internal/doctor"
	"github.com/picket-guard/picket/internal/server"
	"github.com/picket-guard/picket/internal/snapshot"
)

// nilSource is a daemon that has collected nothing yet.
type nilSource struct{}

func (nilSource) Snapshot() *snapshot.Snapshot         { return nil }
func (nilSource) Findings() *doctor.Report             { return nil }
func (nilSource) Alarms() []alarm.Alarm                { return nil }
func (nilSource) Journal(int) (json.RawMessage, error) { return nil, nil }
func (nilSource) Health() server.Health                { return server.Health{} }

// liveSource is the daemon as the server sees it, collecting this host
// every interval with a real collect.Collector and diagnosing each
// snapshot with doctor, recording into a fakeHistory; its journal is
// fixed.
type liveSource struct {
	mu      sync.Mutex
	snap    *snapshot.Snapshot
	report  *doctor.Report
	health  server.Health
	journal json.RawMessage
	hist    *fakeHistory
}

func (l *liveSource) Snapshot() *snapshot.Snapshot {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.snap
}

func (l *liveSource) Findings() *doctor.Report {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.report
}

func (l *liveSource) Alarms() []alarm.Alarm { return nil }

func (l *liveSource) Journal(limit int) (json.RawMessage, error) { return l.journal, nil }

func (l *liveSource) Health() server.Health {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.health
}

// collectOnce takes one snapshot and publishes it with its diagnosis.
func (l *liveSource) collectOnce(ctx context.Context, c *collect.Collector, interval time.Duration) error {
	start := time.Now()
	snap, err := c.Collect(ctx, collect.Full)
	if err != nil {
		return err
	}
	l.mu.Lock()
	prev := l.snap
	l.mu.Unlock()
	rep := doctor.Run(doctor.Input{Cur: snap, Prev: prev, Interval: interval}, doctor.Checks())
	l.hist.record(snap)
	l.mu.Lock()
	l.snap, l.report = snap, &rep
	l.health = server.Health{LastCollection: snap.Time, LastDuration: time.Since(start), Config: "e2e test"}
	l.mu.Unlock()
	return nil
}

// run collects every interval until ctx is done.
func (l *liveSource) run(ctx context.Context, c *collect.Collector, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			l.collectOnce(ctx, c, interval)
		}
	}
}

// fakeHistory keeps every sample in memory, named as internal/history
// names them (series.go), and answers queries the way its store does:
// grouped into epoch-aligned steps of average, minimum and maximum.
type fakeHistory struct {
	mu     sync.Mutex
	series map[string][]server.Point
}

func newFakeHistory() *fakeHistory { return &fakeHistory{series: map[string][]server.Point{}} }

func (h *fakeHistory) add(name string, t time.Time, v float64) {
	h.series[name] = append(h.series[name], server.Point{Time: t, Value: v, Min: v, Max: v})
}

func seriesUser(user string, uid uint32) string {
	if user == "" || strings.Contains(user, "/") {
		return strconv.FormatUint(uint64(uid), 10)
	}
	return user
}

func (h *fakeHistory) record(s *snapshot.Snapshot) {
	h.mu.Lock()
	defer h.mu.Unlock()
	t, k := s.Time, &s.Kernel
	if st := k.Sockstat; st != nil {
		h.add("kernel.sockstat.tcp.orphan", t, float64(st.TCP.Orphan))
		h.add("kernel.sockstat.tcp.mem_pages", t, float64(st.TCP.MemPages))
	}
	if k.TCPMaxOrphans > 0 {
		h.add("kernel.tcp_max_orphans", t, float64(k.TCPMaxOrphans))
	}
	if len(k.TCPMemPages) == 3 {
		h.add("kernel.tcp_mem_pages.high", t, float64(k.TCPMemPages[2]))
	}
	for res, p := range s.Memory.PSI {
		h.add("memory.psi."+res+".some_avg10", t, p.SomeAvg10)
		if p.HasFull {
			h.add("memory.psi."+res+".full_avg10", t, p.FullAvg10)
		}
	}
	for _, g := range s.Processes.Groups {
		h.add(fmt.Sprintf("group/%s/%s/count", seriesUser(g.User, g.UID), g.Comm), t, float64(g.Count))
	}
	starts := map[int]time.Time{}
	for _, p := range s.Processes.List {
		starts[p.PID] = p.StartTime
	}
	for _, ho := range s.Sockets.Processes {
		name := "holder/" + strconv.Itoa(ho.PID)
		if st, ok := starts[ho.PID]; ok && !st.IsZero() {
			name += "@" + strconv.FormatInt(st.Unix(), 10)
		}
		h.add(name+"/"+ho.Comm+"/total", t, float64(ho.Total))
	}
}

func (h *fakeHistory) Query(name string, since, until time.Time, step time.Duration) ([]server.Point, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	pts, ok := h.series[name]
	if !ok {
		return nil, fmt.Errorf("%w: %q", server.ErrNotFound, name)
	}
	var out []server.Point
	var cur server.Point
	n := 0
	flush := func() {
		if n > 0 {
			cur.Value /= float64(n)
			out = append(out, cur)
		}
		n = 0
	}
	for _, p := range pts {
		if p.Time.Before(since) || p.Time.After(until) {
			continue
		}
		if step <= 0 {
			out = append(out, p)
			continue
		}
		b := p.Time.Truncate(step)
		if n == 0 || !b.Equal(cur.Time) {
			flush()
			cur = server.Point{Time: b, Min: p.Value, Max: p.Value}
		}
		cur.Value += p.Value
		cur.Min, cur.Max = min(cur.Min, p.Value), max(cur.Max, p.Value)
		n++
	}
	flush()
	return out, nil
}

func (h *fakeHistory) Series(prefix string) ([]string, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for name := range h.series {
		if strings.HasPrefix(name, prefix) {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out, nil
}
