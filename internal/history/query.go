package history

import (
	"bytes"
	"fmt"
	"math"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Series lists the names of the series that start with prefix, sorted.
func (s *Store) Series(prefix string) ([]string, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []string
	err := s.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(bktSeries)
		if b == nil {
			return errBadFormat
		}
		p := []byte(prefix)
		c := b.Cursor()
		for k, _ := c.Seek(p); k != nil && bytes.HasPrefix(k, p); k, _ = c.Next() {
			out = append(out, string(k))
		}
		return nil
	})
	return out, err
}

// Query returns a series between since and until (zero: now), oldest first.
// It reads the finest tier that still covers since (raw, then minutes,
// then hours), and after that tier's last folded interval the finer ones,
// so the newest samples are always there. With step > 0 the points are
// grouped into intervals of step (aligned to the Unix epoch), each the
// average, minimum and maximum of what fell in it; a coarser tier whose
// resolution divides the step gives the same answer from fewer samples and
// is read instead. A step finer than the tier's resolution changes nothing.
func (s *Store) Query(series string, since, until time.Time, step time.Duration) ([]Point, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	from, to := int64(0), s.opts.Now().UnixNano()+1
	if !since.IsZero() {
		from = since.UnixNano()
	}
	if !until.IsZero() {
		to = until.UnixNano() + 1 // until is inclusive
	}
	var out []Point
	err := s.view(func(tx *bolt.Tx) error {
		e, err := lookup(tx, series)
		if err != nil {
			return err
		}
		st := streamOf(series)
		start, ok := chooseTier(tx, st, from, step)
		if !ok {
			return nil
		}
		var (
			cur int64 = -1
			acc agg
		)
		flush := func() {
			if cur >= 0 && acc.n > 0 {
				out = append(out, toPoint(cur, acc, e.scale))
			}
			acc = agg{}
		}
		err = scan(tx, e, st, start, from, to, func(t int64, a agg) {
			if step <= 0 {
				out = append(out, toPoint(t, a, e.scale))
				return
			}
			b := t - t%int64(step)
			if b != cur {
				flush()
				cur = b
			}
			acc.merge(a)
		})
		flush()
		return err
	})
	return out, err
}

func toPoint(t int64, a agg, scale int8) Point {
	return Point{Time: time.Unix(0, t), Value: fromStored(a.avg, scale),
		Min: fromStored(float64(a.min), scale), Max: fromStored(float64(a.max), scale)}
}

func lookup(tx *bolt.Tx, name string) (seriesInfo, error) {
	b := tx.Bucket(bktSeries)
	if b == nil {
		return seriesInfo{}, errBadFormat
	}
	v := b.Get([]byte(name))
	if v == nil {
		return seriesInfo{}, fmt.Errorf("%w %q", ErrNoSeries, name)
	}
	return decodeInfo(name, v)
}

// chooseTier picks the tier a query starts in: the finest whose oldest
// sample is no later than from (else the one reaching furthest back), then
// the coarsest whose resolution divides step and that reaches as far back.
func chooseTier(tx *bolt.Tx, st stream, from int64, step time.Duration) (tier, bool) {
	var oldest [3]int64
	for _, tr := range tiers {
		oldest[tr] = -1
		if k, _ := tx.Bucket(bucketName(st, tr)).Cursor().First(); k != nil {
			oldest[tr] = keyTime(k)
		}
	}
	start, found := rawTier, false
	for _, tr := range tiers {
		if oldest[tr] >= 0 && oldest[tr] <= from {
			start, found = tr, true
			break
		}
	}
	if !found {
		for _, tr := range tiers {
			if oldest[tr] >= 0 && (!found || oldest[tr] < oldest[start]) {
				start, found = tr, true
			}
		}
		if !found {
			return 0, false
		}
	}
	reach := max(from, oldest[start])
	for tr := hourTier; tr > start && step > 0; tr-- {
		if step%tr.resolution() == 0 && oldest[tr] >= 0 && oldest[tr] <= reach {
			return tr, true
		}
	}
	return start, true
}

// scan calls fn, oldest first, for every stored value of the series in
// [from, to): from tier start up to the point it is folded to, then from
// each finer tier after the coarser one's watermark. An interval of a
// coarse tier that began before from but ends after it is included.
func scan(tx *bolt.Tx, e seriesInfo, st stream, start tier, from, to int64, fn func(t int64, a agg)) error {
	meta := tx.Bucket(bktMeta)
	done := [...]int64{rawTier: math.MaxInt64, minuteTier: getInt(meta, keyMinuteDone), hourTier: getInt(meta, keyHourDone)}
	lo := from
	for tr := start; tr >= rawTier; tr-- {
		hi := min(to, done[tr])
		seek := lo
		if tr == start && tr.resolution() > 0 {
			seek = max(lo-int64(tr.resolution())+1, 0)
		}
		c := tx.Bucket(bucketName(st, tr)).Cursor()
		for k, v := c.Seek(nanoKey(seek)); k != nil && keyTime(k) < hi; k, v = c.Next() {
			a, ok, err := find(v, e.id)
			if err != nil {
				continue // a damaged sample is skipped, not fatal
			}
			if ok {
				fn(keyTime(k), a)
			}
		}
		lo = max(lo, hi)
		if tr == rawTier {
			break
		}
	}
	return nil
}

// PeakOrphans is the highest TCP orphan count recorded since the time
// given (doctor's History): the hour tier's maxima where hours are folded,
// then minutes and raw samples. An hour that began up to an hour before
// since counts whole.
func (s *Store) PeakOrphans(since time.Time) (int, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	peak, found := int64(0), false
	err := s.view(func(tx *bolt.Tx) error {
		e, err := lookup(tx, SeriesOrphans)
		if err != nil {
			return err
		}
		return scan(tx, e, hostStream, hourTier, since.UnixNano(), s.opts.Now().UnixNano()+1, func(_ int64, a agg) {
			if !found || a.max > peak {
				peak, found = a.max, true
			}
		})
	})
	if err != nil {
		return 0, false
	}
	return int(peak), found
}

// Growth says whether a series rose steadily over the last window (a
// socket leak): it is read in about 24 steps of window/24, and
// slope is the least-squares slope of their averages, per second. rising
// needs all three of: slope > 0, at least 3/4 of the steps not lower than
// the one before, and a Kendall rank correlation with time of at least 0.5
// (most pairs of steps in rising order: one jump at the end of a flat line
// is not a rise). ok is false when the window holds fewer than 4 steps.
//
// A check that asks about every holder at every look would read the same
// hours again and again: an answer is reused until a step has passed.
func (s *Store) Growth(series string, window time.Duration) (slope float64, rising bool, ok bool) {
	if window <= 0 {
		return 0, false, false
	}
	now := s.opts.Now()
	step := max(window/24, time.Nanosecond)
	key := growthKey{series, window}
	s.gmu.Lock()
	if g, hit := s.growth[key]; hit && !now.Before(g.at) && now.Sub(g.at) < step {
		s.gmu.Unlock()
		return g.slope, g.rising, g.ok
	}
	s.gmu.Unlock()

	g := growth{at: now}
	if pts, err := s.Query(series, now.Add(-window), now, step); err == nil && len(pts) >= 4 {
		g.slope, g.ok = leastSquaresSlope(pts), true
		nondec := 0
		for i := 1; i < len(pts); i++ {
			if pts[i].Value >= pts[i-1].Value {
				nondec++
			}
		}
		g.rising = g.slope > 0 && nondec*4 >= (len(pts)-1)*3 && kendallTau(pts) >= 0.5
	}

	s.gmu.Lock()
	defer s.gmu.Unlock()
	if s.growth == nil || len(s.growth) >= maxGrowthCache {
		// Holders come and go; what is old is dropped wholesale rather than
		// tracked one by one.
		s.growth = make(map[growthKey]growth)
	}
	s.growth[key] = g
	return g.slope, g.rising, g.ok
}

// maxGrowthCache bounds Growth's memory of answers.
const maxGrowthCache = 4096

type growthKey struct {
	series string
	window time.Duration
}

type growth struct {
	at     time.Time
	slope  float64
	rising bool
	ok     bool
}

func leastSquaresSlope(pts []Point) float64 {
	t0 := pts[0].Time
	var sx, sy, sxx, sxy float64
	n := float64(len(pts))
	for _, p := range pts {
		x := p.Time.Sub(t0).Seconds()
		sx += x
		sy += p.Value
		sxx += x * x
		sxy += x * p.Value
	}
	d := n*sxx - sx*sx
	if d == 0 {
		return 0
	}
	return (n*sxy - sx*sy) / d
}

// kendallTau is (concordant − discordant) / all pairs of points, ties
// counting as neither.
func kendallTau(pts []Point) float64 {
	var c, d int
	for i := range pts {
		for j := i + 1; j < len(pts); j++ {
			switch {
			case pts[j].Value > pts[i].Value:
				c++
			case pts[j].Value < pts[i].Value:
				d++
			}
		}
	}
	n := len(pts) * (len(pts) - 1) / 2
	return float64(c-d) / float64(n)
}
