package history

import (
	"bytes"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"
)

// foldSpan bounds how much one transaction folds: a transaction keeps every
// page it writes in memory until it commits, and the first Compact after a
// long pause may have days to fold.
var foldSpan = [...]time.Duration{minuteTier: 4 * time.Hour, hourTier: 4 * 24 * time.Hour}

// deleteBatch bounds the keys one transaction deletes, for the same reason.
const deleteBatch = 4096

// Compact folds complete minutes of raw samples into the minute tier and
// complete hours of minutes into the hour tier, deletes what is older than
// each tier keeps, prunes the oldest data while the store holds more than
// MaxBytes, forgets series no sample mentions any more, and rewrites the
// file when it has grown well past MaxBytes. The daemon calls it every hour
// or so; it is idempotent.
func (s *Store) Compact(now time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var shrink bool
	err := s.withDB(true, func(db *bolt.DB) error {
		if err := s.fold(db, minuteTier, now.Truncate(time.Minute)); err != nil {
			return fmt.Errorf("history: fold minutes: %w", err)
		}
		var minuteDone int64
		if err := db.View(func(tx *bolt.Tx) error {
			minuteDone = getInt(tx.Bucket(bktMeta), keyMinuteDone)
			return nil
		}); err != nil {
			return err
		}
		hourLimit := time.Unix(0, minuteDone).Truncate(time.Hour)
		if err := s.fold(db, hourTier, hourLimit); err != nil {
			return fmt.Errorf("history: fold hours: %w", err)
		}
		if err := s.retain(db, now); err != nil {
			return fmt.Errorf("history: retention: %w", err)
		}
		used, err := usedBytes(db)
		if err != nil {
			return err
		}
		if used > s.opts.MaxBytes {
			if err := s.prune(db); err != nil {
				return fmt.Errorf("history: prune: %w", err)
			}
		}
		if err := s.forget(db); err != nil {
			return fmt.Errorf("history: forget series: %w", err)
		}
		st, err := os.Stat(s.path)
		if err != nil {
			return err
		}
		used, err = usedBytes(db)
		if err != nil {
			return err
		}
		// bbolt never gives pages back to the file system: after a burst,
		// or when MaxBytes was lowered, copy what is live into a new file.
		shrink = st.Size() > s.opts.MaxBytes/2*3 && used < st.Size()/4*3
		if shrink {
			return s.rewrite(db)
		}
		return nil
	})
	return err
}

// watermark is the meta key recording how far a tier is folded.
func watermark(to tier) []byte {
	if to == hourTier {
		return keyHourDone
	}
	return keyMinuteDone
}

// fold aggregates the tier below `to` into `to` for every complete interval
// before limit, a bounded span per transaction, and moves the watermark.
func (s *Store) fold(db *bolt.DB, to tier, limit time.Time) error {
	from, res := to-1, to.resolution()
	lim := limit.Truncate(res).UnixNano()
	for {
		done := false
		err := db.Update(func(tx *bolt.Tx) error {
			meta := tx.Bucket(bktMeta)
			wm := getInt(meta, watermark(to))
			// Start at the first sample at or after the watermark: a
			// month without samples is skipped, not walked.
			start := int64(-1)
			for _, st := range streams {
				k, _ := tx.Bucket(bucketName(st, from)).Cursor().Seek(nanoKey(max(wm, 0)))
				if k != nil && (start < 0 || keyTime(k) < start) {
					start = keyTime(k)
				}
			}
			if start < 0 || start >= lim {
				done = true
				if lim > wm {
					return putInt(meta, watermark(to), lim)
				}
				return nil
			}
			start = time.Unix(0, start).Truncate(res).UnixNano()
			end := min(lim, start+int64(foldSpan[to]))
			for _, st := range streams {
				if err := foldRange(tx.Bucket(bucketName(st, from)), tx.Bucket(bucketName(st, to)), res, start, end); err != nil {
					return err
				}
			}
			done = end >= lim
			return putInt(meta, watermark(to), end)
		})
		if err != nil || done {
			return err
		}
	}
}

// foldRange writes one aggregate per interval of res in [start, end) of
// src into dst.
func foldRange(src, dst *bolt.Bucket, res time.Duration, start, end int64) error {
	var (
		cur    int64 = -1
		idx          = map[uint64]int{}
		aggs   []agg
		a      agg
		period = int64(res)
		enc    encoder
	)
	flush := func() error {
		if cur < 0 || len(aggs) == 0 {
			return nil
		}
		slices.SortFunc(aggs, func(x, y agg) int {
			if x.id < y.id {
				return -1
			}
			if x.id > y.id {
				return 1
			}
			return 0
		})
		// A fresh slice: bbolt holds it until the commit.
		err := dst.Put(nanoKey(cur), enc.agg(nil, aggs))
		clear(idx)
		aggs = aggs[:0]
		return err
	}
	c := src.Cursor()
	for k, v := c.Seek(nanoKey(start)); k != nil && keyTime(k) < end; k, v = c.Next() {
		t := keyTime(k)
		b := t - t%period
		if b != cur {
			if err := flush(); err != nil {
				return err
			}
			cur = b
		}
		d := newDecoder(v)
		for d.next(&a) {
			if i, ok := idx[a.id]; ok {
				aggs[i].merge(a)
			} else {
				idx[a.id] = len(aggs)
				aggs = append(aggs, a)
			}
		}
		if d.err != nil {
			// One damaged sample must not stop the folding of the rest.
			continue
		}
	}
	return flush()
}

// retain deletes what each tier no longer keeps. Nothing is deleted before
// it is folded into the next tier.
func (s *Store) retain(db *bolt.DB, now time.Time) error {
	var minuteDone, hourDone int64
	if err := db.View(func(tx *bolt.Tx) error {
		m := tx.Bucket(bktMeta)
		minuteDone, hourDone = getInt(m, keyMinuteDone), getInt(m, keyHourDone)
		return nil
	}); err != nil {
		return err
	}
	cuts := [...]int64{
		rawTier:    min(now.Add(-s.opts.Raw).UnixNano(), minuteDone),
		minuteTier: min(now.Add(-s.opts.Minute).UnixNano(), hourDone),
		hourTier:   now.Add(-s.opts.Hour).UnixNano(),
	}
	for _, tr := range tiers {
		if err := deleteBefore(db, tr, cuts[tr]); err != nil {
			return err
		}
	}
	return nil
}

// deleteBefore deletes a tier's samples older than cut, in both streams.
func deleteBefore(db *bolt.DB, tr tier, cut int64) error {
	if cut <= 0 {
		return nil
	}
	ck := nanoKey(cut)
	for _, st := range streams {
		for {
			n := 0
			err := db.Update(func(tx *bolt.Tx) error {
				c := tx.Bucket(bucketName(st, tr)).Cursor()
				for k, _ := c.First(); k != nil && bytes.Compare(k, ck) < 0 && n < deleteBatch; k, _ = c.First() {
					if err := c.Delete(); err != nil {
						return err
					}
					n++
				}
				return nil
			})
			if err != nil {
				return err
			}
			if n < deleteBatch {
				break
			}
		}
	}
	return nil
}

// prune deletes the oldest samples until the store is back under 90 % of
// MaxBytes (the margin keeps it from pruning at every sample): raw samples
// first (the minute tier still has them), then minutes (the hour tier has
// them), then hours; never anything not yet folded, nor the newest hour.
func (s *Store) prune(db *bolt.DB) error {
	target := s.opts.MaxBytes / 10 * 9
	for _, tr := range tiers {
		for range 64 {
			used, err := usedBytes(db)
			if err != nil || used <= target {
				return err
			}
			oldest, limit := int64(-1), int64(0)
			if err := db.View(func(tx *bolt.Tx) error {
				m := tx.Bucket(bktMeta)
				switch tr {
				case rawTier:
					limit = getInt(m, keyMinuteDone)
				case minuteTier:
					limit = getInt(m, keyHourDone)
				case hourTier:
					for _, st := range streams {
						if k, _ := tx.Bucket(bucketName(st, tr)).Cursor().Last(); k != nil {
							limit = max(limit, keyTime(k))
						}
					}
				}
				for _, st := range streams {
					if k, _ := tx.Bucket(bucketName(st, tr)).Cursor().First(); k != nil && (oldest < 0 || keyTime(k) < oldest) {
						oldest = keyTime(k)
					}
				}
				return nil
			}); err != nil {
				return err
			}
			if oldest < 0 || oldest >= limit {
				break // nothing left to prune in this tier
			}
			// An eighth of what is left each round: a few rounds find the
			// cut without measuring every sample's size.
			step := max((limit-oldest)/8, int64(max(tr.resolution(), time.Second)))
			if err := deleteBefore(db, tr, min(oldest+step, limit)); err != nil {
				return err
			}
		}
	}
	return nil
}

// forget deletes the dictionary entries of series that no stored sample can
// mention any more: last seen before the oldest sample kept. Pids are
// recycled and commands come and go; without this the dictionary would grow
// for ever.
func (s *Store) forget(db *bolt.DB) error {
	return db.Update(func(tx *bolt.Tx) error {
		oldest := int64(-1)
		for _, st := range streams {
			for _, tr := range tiers {
				if k, _ := tx.Bucket(bucketName(st, tr)).Cursor().First(); k != nil && (oldest < 0 || keyTime(k) < oldest) {
					oldest = keyTime(k)
				}
			}
		}
		if oldest < 0 {
			oldest = math.MaxInt64 // an empty store: no sample mentions any
		}
		series, ids := tx.Bucket(bktSeries), tx.Bucket(bktIDs)
		var gone [][]byte
		var goneIDs []uint64
		err := series.ForEach(func(k, v []byte) error {
			e, err := decodeInfo(string(k), v)
			if err != nil {
				return nil // keep what cannot be read; it costs a few bytes
			}
			// seen is the hour of the last sample at most: the series may
			// appear until the end of that hour.
			if (e.seen+1)*int64(time.Hour) < oldest && len(gone) < 100000 {
				gone = append(gone, bytes.Clone(k))
				goneIDs = append(goneIDs, e.id)
			}
			return nil
		})
		if err != nil {
			return err
		}
		for i, k := range gone {
			// The next Record must look it up again (and give it a new id).
			delete(s.known, string(k))
			if err := series.Delete(k); err != nil {
				return err
			}
			if err := ids.Delete(idKey(goneIDs[i])); err != nil {
				return err
			}
		}
		return nil
	})
}

// rewrite copies the live data into a new file and renames it over the old
// one. Readers that opened the old file finish reading it; the next open
// finds the new one.
func (s *Store) rewrite(src *bolt.DB) error {
	tmp := s.path + ".compact"
	os.Remove(tmp)
	dst, err := bolt.Open(tmp, 0o600, &bolt.Options{NoSync: s.opts.noSync, FreelistType: bolt.FreelistMapType})
	if err != nil {
		return fmt.Errorf("history: rewrite: %w", err)
	}
	if err := bolt.Compact(dst, src, 4<<20); err != nil {
		dst.Close()
		os.Remove(tmp)
		return fmt.Errorf("history: rewrite: %w", err)
	}
	if err := dst.Sync(); err != nil {
		dst.Close()
		os.Remove(tmp)
		return fmt.Errorf("history: rewrite: %w", err)
	}
	if err := dst.Close(); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("history: rewrite: %w", err)
	}
	if err := os.Rename(tmp, s.path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("history: rewrite: %w", err)
	}
	if d, err := os.Open(filepath.Dir(s.path)); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}
