package history

import (
	"math/rand/v2"
	"path/filepath"
	"testing"
	"time"
)

// BenchmarkRecord records the 3,000-process / 30,000-socket host of
// scripts/bench-snapshot (synthetic here: 60 crowds and 820 one-off
// commands, 206 heavy socket holders and 500 light ones, ~1,000 series a
// sample), a look every 15 seconds with the heavy holders' counts moving.
// disk-B/sample is the growth of the pages in use per sample; the "sync"
// case pays bbolt's two fdatasyncs per transaction, as the daemon does.
func BenchmarkRecord(b *testing.B) {
	for _, bc := range []struct {
		name   string
		noSync bool
	}{{"sync", false}, {"nosync", true}} {
		b.Run(bc.name, func(b *testing.B) {
			c := &clock{now: t0}
			s, err := Open(filepath.Join(b.TempDir(), "history.db"), Options{Now: c.Now, noSync: bc.noSync})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			rng := rand.New(rand.NewPCG(5, 6))
			h := bigHost(rng)
			snap := h.snapshot(t0)
			// Warm up: the dictionary is written once, not per sample.
			for range 10 {
				c.now = c.now.Add(15 * time.Second)
				snap.Time = c.now
				if err := s.Record(snap); err != nil {
					b.Fatal(err)
				}
			}
			before := storeUsed(b, s)
			b.ReportAllocs()
			n := 0
			for b.Loop() {
				c.now = c.now.Add(15 * time.Second)
				snap.Time = c.now
				for i := 0; i < 200; i++ {
					hd := &snap.Sockets.Processes[i]
					d := rng.IntN(3) - 1
					hd.TCP += d
					hd.Total += d
				}
				snap.Kernel.Sockstat.TCP.Orphan = 150 + rng.IntN(100)
				if err := s.Record(snap); err != nil {
					b.Fatal(err)
				}
				n++
			}
			b.StopTimer()
			after := storeUsed(b, s)
			b.ReportMetric(float64(after-before)/float64(n), "disk-B/sample")
		})
	}
}

// BenchmarkQueryHolder reads one holder's series over 48 hours of raw
// samples of that host, as `picket history` does.
func BenchmarkQueryHolder(b *testing.B) {
	c := &clock{now: t0}
	s, err := Open(filepath.Join(b.TempDir(), "history.db"), Options{Now: c.Now, noSync: true})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	h := bigHost(rand.New(rand.NewPCG(7, 8)))
	snap := h.snapshot(t0)
	const samples = 48 * 60 // a look a minute for 48 hours
	for i := range samples {
		c.now = t0.Add(time.Duration(i) * time.Minute)
		snap.Time = c.now
		if err := s.Record(snap); err != nil {
			b.Fatal(err)
		}
	}
	name := HolderSeries(1100, h.starts[1100], "php-fpm8.2", "total")
	for b.Loop() {
		p, err := s.Query(name, t0, time.Time{}, 0)
		if err != nil || len(p) != samples {
			b.Fatalf("%d points, %v", len(p), err)
		}
	}
}
