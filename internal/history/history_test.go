package history

import (
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/picket-guard/picket/internal/doctor"
	"github.com/picket-guard/picket/internal/snapshot"
)

// The store is what doctor asks about the past.
var _ doctor.History = (*Store)(nil)

// TestRecordAndQueryRaw: every host series the issue names is kept, with
// its value, and a source the snapshot lacks gives no sample.
func TestRecordAndQueryRaw(t *testing.T) {
	c := &clock{now: t0}
	s, _ := openTest(t, c, Options{})
	h := &host{orphans: 7}
	for i := range 3 {
		h.orphans = 7 + i
		mustRecord(t, s, h.snapshot(t0.Add(time.Duration(i)*15*time.Second)))
	}
	c.now = t0.Add(time.Minute)
	want := map[string]float64{
		"kernel.sockstat.sockets_used":  909,
		"kernel.sockstat.tcp.inuse":     120,
		SeriesOrphans:                   9,
		"kernel.sockstat.tcp.tw":        40,
		"kernel.sockstat.tcp.alloc":     139,
		"kernel.sockstat.tcp.mem_pages": 32,
		"kernel.sockstat.udp.inuse":     8,
		"kernel.sockstat.udp.mem_pages": 2,
		"kernel.tcp_max_orphans":        65536,
		"kernel.tcp_mem_pages.high":     188000,
		"kernel.file_nr.allocated":      4000,
		"kernel.file_nr.max":            9223372036854775807,
		"kernel.pid_max":                4194304,
		"kernel.threads_max":            62000,
		"memory.psi.memory.some_avg10":  1.25,
		"memory.psi.memory.full_avg10":  0.5,
		"memory.psi.cpu.some_avg10":     12.34,
		"memory.vmstat.pswpin":          10,
		"memory.vmstat.pswpout":         20,
		"memory.vmstat.pgmajfault":      30,
	}
	for name, v := range want {
		p := mustQuery(t, s, name, time.Time{}, time.Time{}, 0)
		if len(p) != 3 {
			t.Errorf("%s: %d points, want 3", name, len(p))
			continue
		}
		got := p[2].Value
		if name == "kernel.file_nr.max" {
			// Clamped to what a float64 holds exactly: fs.file-max's
			// "unlimited" is still far beyond any count.
			if got < 1<<52 {
				t.Errorf("%s = %v, want huge", name, got)
			}
			continue
		}
		if got != v || p[2].Min != v || p[2].Max != v {
			t.Errorf("%s = %+v, want %v", name, p[2], v)
		}
	}
	if _, err := s.Query("kernel.conntrack.count", time.Time{}, time.Time{}, 0); !errors.Is(err, ErrNoSeries) {
		t.Errorf("conntrack without nf_conntrack: %v, want ErrNoSeries", err)
	}
	if _, err := s.Query("memory.psi.cpu.full_avg10", time.Time{}, time.Time{}, 0); !errors.Is(err, ErrNoSeries) {
		t.Errorf("cpu full without has_full: %v, want ErrNoSeries", err)
	}
	names, err := s.Series("kernel.sockstat.tcp.")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"kernel.sockstat.tcp.alloc", "kernel.sockstat.tcp.inuse", "kernel.sockstat.tcp.mem_pages",
		"kernel.sockstat.tcp.orphan", "kernel.sockstat.tcp.tw"}; !slices.Equal(names, want) {
		t.Errorf("Series = %q, want %q", names, want)
	}
	p := mustQuery(t, s, SeriesOrphans, t0.Add(15*time.Second), t0.Add(15*time.Second), 0)
	if len(p) != 1 || p[0].Value != 8 || !p[0].Time.Equal(t0.Add(15*time.Second)) {
		t.Errorf("since = until = the second sample: %+v", p)
	}
}

// TestTiers: 10-second samples for three hours, folded; each tier answers
// with the right minimum, maximum and average, the newest samples are
// always there, and retention empties each tier at its own age.
func TestTiers(t *testing.T) {
	c := &clock{now: t0}
	s, _ := openTest(t, c, Options{Raw: time.Hour, Minute: 2 * time.Hour})
	h := &host{}
	const n = 3*360 + 30 // three hours and five minutes
	for i := range n {
		h.orphans = i
		c.now = t0.Add(time.Duration(i) * 10 * time.Second)
		mustRecord(t, s, h.snapshot(c.now))
		if i > 0 && i%360 == 0 {
			if err := s.Compact(c.now); err != nil {
				t.Fatal(err)
			}
		}
	}
	end := c.now // t0 + 3h04m50s
	if err := s.Compact(end); err != nil {
		t.Fatal(err)
	}
	if err := s.Compact(end); err != nil { // idempotent
		t.Fatal(err)
	}

	// Raw: since 30 minutes ago, every sample.
	p := mustQuery(t, s, SeriesOrphans, end.Add(-30*time.Minute), time.Time{}, 0)
	if len(p) != 181 || p[0].Value != n-181 || p[180].Value != n-1 || !p[180].Time.Equal(end) {
		t.Fatalf("raw tier: %d points %+v … %+v", len(p), p[0], p[len(p)-1])
	}

	// Minutes: raw is kept for an hour, so since 1h30m ago reads minutes
	// up to the last complete one (3h04m), then raw.
	since := t0.Add(95 * time.Minute)
	p = mustQuery(t, s, SeriesOrphans, since, time.Time{}, 0)
	if len(p) != 89+6 {
		t.Fatalf("minute tier: %d points", len(p))
	}
	for i, pt := range p[:89] {
		m := 95 + i
		want := Point{Time: t0.Add(time.Duration(m) * time.Minute), Min: float64(6 * m), Max: float64(6*m + 5), Value: float64(6*m) + 2.5}
		if !pt.Time.Equal(want.Time) || pt.Min != want.Min || pt.Max != want.Max || pt.Value != want.Value {
			t.Fatalf("minute %d: %+v, want %+v", m, pt, want)
		}
	}
	if p[89].Value != 6*184 || p[89].Min != p[89].Value {
		t.Errorf("after the minutes come raw samples: %+v", p[89])
	}

	// Hours: minutes are kept for two hours, so since t0 reads hours, then
	// the minutes of the last hour, then raw.
	p = mustQuery(t, s, SeriesOrphans, t0, time.Time{}, 0)
	if len(p) != 3+4+6 {
		t.Fatalf("hour tier: %d points", len(p))
	}
	for hr := range 3 {
		want := Point{Time: t0.Add(time.Duration(hr) * time.Hour), Min: float64(360 * hr), Max: float64(360*hr + 359), Value: float64(360*hr) + 179.5}
		if pt := p[hr]; !pt.Time.Equal(want.Time) || pt.Min != want.Min || pt.Max != want.Max || pt.Value != want.Value {
			t.Errorf("hour %d: %+v, want %+v", hr, pt, want)
		}
	}
	if pt := p[3]; !pt.Time.Equal(t0.Add(3*time.Hour)) || pt.Min != 1080 || pt.Max != 1085 {
		t.Errorf("first minute after the hours: %+v", pt)
	}

	// A step: 30-minute averages read from the hour tier where hours are
	// folded give the same as from minutes.
	p = mustQuery(t, s, SeriesOrphans, t0.Add(2*time.Hour), end, 30*time.Minute)
	if len(p) != 3 || p[0].Min != 720 || p[0].Max != 899 || p[1].Min != 900 || p[2].Min != 1080 || p[2].Max != n-1 {
		t.Errorf("30m steps: %+v", p)
	}
	p = mustQuery(t, s, SeriesOrphans, t0.Add(2*time.Hour), t0.Add(3*time.Hour-time.Nanosecond), time.Hour)
	if len(p) != 1 || p[0].Value != 720+179.5 {
		t.Errorf("1h step: %+v", p)
	}

	// Retention: raw from one hour ago, minutes from two, hours all.
	if o, _, _ := tierSpan(t, s, hostStream, rawTier); o.Before(end.Add(-time.Hour)) {
		t.Errorf("raw kept from %v, want ≥ %v", o, end.Add(-time.Hour))
	}
	if o, nw, _ := tierSpan(t, s, hostStream, minuteTier); o.Before(end.Add(-2*time.Hour)) || !nw.Equal(t0.Add(183*time.Minute)) {
		t.Errorf("minutes kept %v … %v", o, nw)
	}
	if o, nw, k := tierSpan(t, s, hostStream, hourTier); !o.Equal(t0) || k != 3 || !nw.Equal(t0.Add(2*time.Hour)) {
		t.Errorf("hours %v … %v (%d)", o, nw, k)
	}

	// Later, the hours go too.
	c.now = end.Add(100 * 24 * time.Hour)
	if err := s.Compact(c.now); err != nil {
		t.Fatal(err)
	}
	for _, tr := range tiers {
		if _, _, k := tierSpan(t, s, hostStream, tr); k != 0 {
			t.Errorf("tier %d after 100 days: %d samples left", tr, k)
		}
	}
	if names, _ := s.Series(""); len(names) != 0 {
		t.Errorf("series without samples are forgotten: %q", names)
	}
}

// TestWeekScenario: nine days of looks every five minutes: an orphan peak
// on the first day and a smaller one on the fifth, a holder that leaks and
// one that does not, a process storm, one-off commands.
func TestWeekScenario(t *testing.T) {
	c := &clock{now: t0}
	s, path := openTest(t, c, Options{})
	rng := rand.New(rand.NewPCG(1, 2))
	h := &host{starts: map[int]time.Time{
		100: t0.Add(-time.Hour), 200: t0.Add(-2 * time.Hour), 300: t0.Add(-3 * time.Hour),
	}}
	const step = 5 * time.Minute
	days := 9 * 24 * time.Hour
	leakStart := t0.Add(days - 6*time.Hour)
	stormStart, stormEnd := t0.Add(8*24*time.Hour), t0.Add(8*24*time.Hour+time.Hour)
	for tm := t0; tm.Before(t0.Add(days)); tm = tm.Add(step) {
		c.now = tm
		switch day := tm.Sub(t0) / (24 * time.Hour); {
		case day == 1 && tm.Hour() == 12:
			h.orphans = 5000 + rng.IntN(100)
		case day == 5 && tm.Hour() == 3:
			h.orphans = 3000 + rng.IntN(30)
		default:
			h.orphans = 100 + rng.IntN(20)
		}
		leak := 40
		if tm.After(leakStart) {
			// One socket a minute, give or take a few closed ones.
			leak = 60 + int(tm.Sub(leakStart)/time.Minute) - rng.IntN(4)
		}
		php := 2
		if !tm.Before(stormStart) && tm.Before(stormEnd) {
			php = 800
		}
		h.groups = []snapshot.Group{
			{User: "www-data", UID: 33, Comm: "php", Count: php, Threads: php, RSSBytes: uint64(php) << 20},
			{User: "root", UID: 0, Comm: "cron", Count: 1, Threads: 1, RSSBytes: 1 << 20},
			{User: "root", UID: 0, Comm: "job-" + tm.Format("1504"), Count: 1, Threads: 1},
		}
		h.holders = []snapshot.Holder{
			holder(100, "leaky", leak, 0),
			holder(200, "steady", 480+rng.IntN(40), 20),
			holder(300, "small", 10, 2),
		}
		mustRecord(t, s, h.snapshot(tm))
		if tm.Minute() == 0 {
			if err := s.Compact(tm); err != nil {
				t.Fatal(err)
			}
		}
	}
	now := c.now

	// Doctor's question: the peak of the last seven days is the fifth
	// day's, not the first's.
	if p, ok := s.PeakOrphans(now.Add(-7 * 24 * time.Hour)); !ok || p < 3000 || p >= 3030 {
		t.Errorf("PeakOrphans(7d) = %d, %v; want the fifth day's ~3000", p, ok)
	}
	if p, ok := s.PeakOrphans(t0); !ok || p < 5000 {
		t.Errorf("PeakOrphans(9d) = %d, %v; want the first day's ~5000", p, ok)
	}
	if p, ok := s.PeakOrphans(now.Add(-10 * time.Minute)); !ok || p < 100 || p >= 120 {
		t.Errorf("PeakOrphans(10m) = %d, %v", p, ok)
	}
	if _, ok := s.PeakOrphans(now.Add(time.Hour)); ok {
		t.Errorf("PeakOrphans of the future found something")
	}

	// The leak rises; the busy holder does not.
	leaky := HolderSeries(100, h.starts[100], "leaky", "total")
	steady := HolderSeries(200, h.starts[200], "steady", "total")
	if slope, rising, ok := s.Growth(leaky, 3*time.Hour); !ok || !rising || math.Abs(slope*60-1) > 0.2 {
		t.Errorf("Growth(leaky) = %v/min, %v, %v; want ~1/min, rising", slope*60, rising, ok)
	}
	if slope, rising, ok := s.Growth(steady, 3*time.Hour); !ok || rising {
		t.Errorf("Growth(steady) = %v/s, rising %v, ok %v; want not rising", slope, rising, ok)
	}
	if _, rising, _ := s.Growth(steady, 8*24*time.Hour); rising {
		t.Errorf("Growth(steady, 8d) rising")
	}
	if _, _, ok := s.Growth("holder/1/none/total", time.Hour); ok {
		t.Errorf("Growth of an unknown series is ok")
	}
	// Below MinSockets until the leak began: not kept before.
	if p := mustQuery(t, s, leaky, t0, time.Time{}, 0); len(p) == 0 || p[0].Time.Before(leakStart) {
		t.Errorf("leaky kept from %v, want after %v", p[0].Time, leakStart)
	}

	// Holders and crowds: the small holder and the one-off commands are not
	// kept; the storm is, from its start, and stays kept when it shrinks.
	for _, prefix := range []string{"holder/300@", "group/root/"} {
		if names, _ := s.Series(prefix); len(names) != 0 {
			t.Errorf("Series(%q) = %q, want none", prefix, names)
		}
	}
	php := GroupSeries("www-data", 33, "php", "count")
	p := mustQuery(t, s, php, stormStart.Add(-time.Hour), stormEnd.Add(time.Hour), 0)
	if len(p) == 0 || !p[0].Time.Equal(stormStart) || p[0].Value != 800 || p[len(p)-1].Value != 2 {
		t.Errorf("storm: %+v", p)
	}
	p = mustQuery(t, s, php, stormStart, stormEnd.Add(-time.Nanosecond), 10*time.Minute)
	if len(p) != 6 || p[0].Max != 800 {
		t.Errorf("storm in 10m steps: %+v", p)
	}
	names, err := s.Series("group/www-data/php/")
	if err != nil || !slices.Equal(names, []string{php, GroupSeries("www-data", 33, "php", "rss_bytes"), GroupSeries("www-data", 33, "php", "threads")}) {
		t.Errorf("group series: %q %v", names, err)
	}
	if names, _ := s.Series("holder/100@"); !slices.Equal(names, []string{HolderSeries(100, h.starts[100], "leaky", "fds"), HolderSeries(100, h.starts[100], "leaky", "tcp"), leaky}) {
		t.Errorf("leaky's series: %q (udp, unix never non-zero)", names)
	}

	// Close, reopen: the data is there, and the crowd is still kept while
	// small; when it goes, it gets its 0.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); !errors.Is(err, ErrClosed) {
		t.Errorf("second Close: %v", err)
	}
	s2, err := Open(path, Options{Now: c.Now, noSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if p, ok := s2.PeakOrphans(now.Add(-7 * 24 * time.Hour)); !ok || p < 3000 || p >= 3030 {
		t.Errorf("after reopen PeakOrphans(7d) = %d, %v", p, ok)
	}
	c.now = now.Add(step)
	mustRecord(t, s2, h.snapshot(c.now))
	h.groups = h.groups[1:]
	c.now = c.now.Add(step)
	mustRecord(t, s2, h.snapshot(c.now))
	c.now = c.now.Add(step)
	mustRecord(t, s2, h.snapshot(c.now))
	p = mustQuery(t, s2, php, now.Add(time.Second), time.Time{}, 0)
	if len(p) != 2 || p[0].Value != 2 || p[1].Value != 0 || !p[1].Time.Equal(now.Add(2*step)) {
		t.Errorf("after reopen the crowd is kept and its end recorded: %+v", p)
	}
}

// TestMaxBytes: a store bounded far below what the samples need keeps the
// newest, prunes the oldest raw samples first, and its file stays near the
// bound.
func TestMaxBytes(t *testing.T) {
	c := &clock{now: t0}
	const maxBytes = 1 << 20
	s, path := openTest(t, c, Options{MaxBytes: maxBytes})
	h := bigHost(rand.New(rand.NewPCG(3, 4)))
	var peak int64
	for i := range 6 * 60 { // six hours, a look a minute: ~4 KB each
		c.now = t0.Add(time.Duration(i) * time.Minute)
		h.orphans = i
		mustRecord(t, s, h.snapshot(c.now))
		if c.now.Minute() == 0 {
			if err := s.Compact(c.now); err != nil {
				t.Fatal(err)
			}
		}
		peak = max(peak, fileSize(t, path))
	}
	if err := s.Compact(c.now); err != nil {
		t.Fatal(err)
	}
	used := storeUsed(t, s)
	if used > maxBytes {
		t.Errorf("used %d bytes, bound %d", used, maxBytes)
	}
	if fs := fileSize(t, path); fs > maxBytes*3/2 {
		t.Errorf("file %d bytes after Compact, bound %d", fs, maxBytes)
	}
	if peak > 4*maxBytes {
		t.Errorf("file reached %d bytes between compactions, bound %d", peak, maxBytes)
	}
	// The newest sample is there, raw; the oldest raw ones are gone but
	// their hours remain.
	p := mustQuery(t, s, SeriesOrphans, c.now, time.Time{}, 0)
	if len(p) != 1 || p[0].Value != 6*60-1 {
		t.Errorf("newest sample: %+v", p)
	}
	if o, _, _ := tierSpan(t, s, procStream, rawTier); !o.After(t0.Add(time.Hour)) {
		t.Errorf("raw kept from %v: nothing pruned", o)
	}
	if o, _, k := tierSpan(t, s, hostStream, hourTier); !o.Equal(t0) || k == 0 {
		t.Errorf("hours from %v (%d): pruned before the raw samples", o, k)
	}
	if p, ok := s.PeakOrphans(t0); !ok || p != 6*60-1 {
		t.Errorf("PeakOrphans = %d, %v", p, ok)
	}
	t.Logf("used %d, file %d, peak file %d", used, fileSize(t, path), peak)
}

// TestReadOnlyWhileWriterOpen: picket history reads a store the daemon has
// open; it cannot write; a missing file is an error, not a new file.
func TestReadOnlyWhileWriterOpen(t *testing.T) {
	c := &clock{now: t0}
	w, path := openTest(t, c, Options{})
	h := &host{orphans: 42}
	mustRecord(t, w, h.snapshot(t0))
	r, err := Open(path, Options{ReadOnly: true, Now: c.Now, LockTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if p := mustQuery(t, r, SeriesOrphans, time.Time{}, time.Time{}, 0); len(p) != 1 || p[0].Value != 42 {
		t.Errorf("reader: %+v", p)
	}
	h.orphans = 43
	c.now = t0.Add(time.Second)
	mustRecord(t, w, h.snapshot(c.now))
	if p := mustQuery(t, r, SeriesOrphans, time.Time{}, time.Time{}, 0); len(p) != 2 {
		t.Errorf("reader sees the writer's new sample: %+v", p)
	}
	if err := r.Record(h.snapshot(t0)); !errors.Is(err, ErrReadOnly) {
		t.Errorf("Record on a read-only store: %v", err)
	}
	if err := r.Compact(t0); !errors.Is(err, ErrReadOnly) {
		t.Errorf("Compact on a read-only store: %v", err)
	}
	if _, err := Open(path+".missing", Options{ReadOnly: true}); err == nil {
		t.Errorf("read-only open of a missing file succeeded")
	}
}

// TestEncodeRoundTrip: the varint layouts give back what went in, whole
// and one series at a time, across blocks.
func TestEncodeRoundTrip(t *testing.T) {
	var e encoder
	var vals []val
	for i := range 100 {
		vals = append(vals, val{id: uint64(3*i + 1), v: int64(i*i) - 50})
	}
	vals = append(vals, val{id: 1000, v: 1 << 50})
	b := e.raw(nil, vals)
	d := newDecoder(b)
	var a agg
	i := 0
	for ; d.next(&a); i++ {
		if a.id != vals[i].id || a.last != vals[i].v || a.n != 1 {
			t.Errorf("raw %d: %+v", i, a)
		}
	}
	if d.err != nil || i != len(vals) {
		t.Errorf("raw: %d of %d, %v", i, len(vals), d.err)
	}
	for _, v := range vals {
		if a, ok, err := find(b, v.id); !ok || err != nil || a.last != v.v {
			t.Errorf("find(%d) = %+v %v %v", v.id, a, ok, err)
		}
		if _, ok, _ := find(b, v.id+1); ok && v.id != 1000 {
			t.Errorf("find(%d) found a series that is not there", v.id+1)
		}
	}
	if _, ok, err := find(e.raw(nil, nil), 1); ok || err != nil {
		t.Errorf("find in an empty sample: %v %v", ok, err)
	}
	as := []agg{{id: 4, n: 6, min: -3, max: 10, last: 2, avg: 1.5}, {id: 9, n: 1, min: 5, max: 5, last: 5, avg: 5}}
	d = newDecoder(e.agg(nil, as))
	for i := 0; d.next(&a); i++ {
		if a != as[i] {
			t.Errorf("agg %d: %+v, want %+v", i, a, as[i])
		}
	}
	if d.err != nil {
		t.Error(d.err)
	}
	for _, bad := range [][]byte{nil, {fmtRaw, 5, 1}, {fmtRaw, 1, 1, 0, 9, 1, 2}, {7}} {
		if _, _, err := find(bad, 3); err == nil {
			t.Errorf("%v decoded", bad)
		}
	}
}

// TestSeriesNames: names a process chose stay unambiguous.
func TestSeriesNames(t *testing.T) {
	for _, c := range []struct{ got, want string }{
		{GroupSeries("www-data", 33, "php-fpm8.2", "count"), "group/www-data/php-fpm8.2/count"},
		{GroupSeries("", 1001, "a/b", "threads"), "group/1001/a/b/threads"},
		{GroupSeries("ev/il", 7, "x", "count"), "group/7/x/count"},
		{HolderSeries(42, time.Unix(1700000000, 5e8), "nginx", "tcp"), "holder/42@1700000000/nginx/tcp"},
		{HolderSeries(42, time.Time{}, "\x1b[2J", "total"), "holder/42/\x1b[2J/total"},
	} {
		if c.got != c.want {
			t.Errorf("%q, want %q", c.got, c.want)
		}
	}
}

// FuzzDecode: a damaged file never panics a reader.
func FuzzDecode(f *testing.F) {
	var e encoder
	f.Add(e.raw(nil, []val{{id: 1, v: 2}, {id: 40, v: -1}}), uint64(40))
	f.Add(e.agg(nil, []agg{{id: 3, n: 2, min: 1, max: 4, last: 4, avg: 2.5}}), uint64(3))
	f.Fuzz(func(t *testing.T, b []byte, id uint64) {
		find(b, id)
		d := newDecoder(b)
		var a agg
		for d.next(&a) {
		}
	})
}

// TestKernelLogSeries: what the kernel said, per kind it has said, and the
// counters behind it, as series.
func TestKernelLogSeries(t *testing.T) {
	c := &clock{now: t0}
	s, _ := openTest(t, c, Options{})
	h := &host{orphans: 7}
	for i := range 2 {
		snap := h.snapshot(t0.Add(time.Duration(i) * 15 * time.Second))
		snap.KernelLog = &snapshot.KernelLog{Available: true, Kinds: []snapshot.KernelKind{
			{Kind: "tcp-orphans", Count: uint64(10 + i)}, {Kind: "oom-kill"},
		}}
		snap.Kernel.Netstat = &snapshot.Netstat{AbortOnMemory: uint64(100 * (i + 1))}
		snap.Kernel.ConntrackStat = &snapshot.ConntrackStat{Drop: 3}
		mustRecord(t, s, snap)
	}
	c.now = t0.Add(time.Minute)
	for name, want := range map[string]float64{"kernel_log.tcp-orphans": 11, "kernel.netstat.tcp_abort_on_memory": 200, "kernel.conntrack.drop": 3} {
		if p := mustQuery(t, s, name, time.Time{}, time.Time{}, 0); len(p) != 2 || p[1].Value != want {
			t.Errorf("%s = %+v, want %v", name, p, want)
		}
	}
	// A kind the kernel never said has no series.
	if names, _ := s.Series("kernel_log."); !slices.Equal(names, []string{"kernel_log.tcp-orphans"}) {
		t.Errorf("kernel_log series = %q", names)
	}
}

// TestForecastSeries: the counts the forecasts fit are kept: a holder's
// fds, a user's threads (with an RLIMIT_NPROC), a limited cgroup's tasks
// and working set, a beancounter with a barrier.
func TestForecastSeries(t *testing.T) {
	c := &clock{now: t0}
	s, _ := openTest(t, c, Options{})
	u := func(v uint64) *uint64 { return &v }
	h := &host{holders: []snapshot.Holder{holder(42, "leaky", 0, 100)}, starts: map[int]time.Time{42: t0.Add(-time.Hour)}}
	for i := range 2 {
		snap := h.snapshot(t0.Add(time.Duration(i) * 15 * time.Second))
		snap.Sockets.Processes[0].FDs = 110 + i
		snap.Processes.Users = []snapshot.User{{User: "root", Threads: 90, NprocLimit: 100}, {User: "www", UID: 33, Threads: 70 + i, NprocLimit: 100}}
		snap.Cgroups = []snapshot.Cgroup{{Path: "/"}, {Path: "/system.slice/a.service", PidsCurrent: u(10), PidsMax: u(100),
			MemoryCurrent: u(1000), MemoryMax: u(4000), MemoryStat: map[string]uint64{"inactive_file": 300}}, {Path: "/free", PidsCurrent: u(3)}}
		snap.Beancounters = []snapshot.Beancounter{{UID: "101", Resource: "numothersock", Held: 300, Barrier: 400},
			{UID: "101", Resource: "kmemsize", Held: 5, Barrier: 9223372036854775807}}
		mustRecord(t, s, snap)
	}
	c.now = t0.Add(time.Minute)
	for name, want := range map[string]float64{
		HolderSeries(42, t0.Add(-time.Hour), "leaky", "fds"):   111,
		UserSeries("www", 33, "threads"):                       71,
		CgroupSeries("/system.slice/a.service", "pids"):        10,
		CgroupSeries("/system.slice/a.service", "working_set"): 700,
		"beancounter.101.numothersock.held":                    300,
		"beancounter.101.numothersock.barrier":                 400,
	} {
		if p := mustQuery(t, s, name, time.Time{}, time.Time{}, 0); len(p) != 2 || p[1].Value != want {
			t.Errorf("%s = %+v, want %v", name, p, want)
		}
	}
	for _, prefix := range []string{"user/root/", "cgroup/free/", "beancounter.101.kmemsize"} {
		if names, _ := s.Series(prefix); len(names) != 0 {
			t.Errorf("series %q kept: root is exempt from RLIMIT_NPROC, the others are unlimited", names)
		}
	}
}
