package history

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/picket-guard/picket/internal/snapshot"
)

// t0 is the fake clock's start: a Monday at midnight UTC, so minutes and
// hours line up with the samples.
var t0 = time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)

// clock is a fake clock the tests move by hand.
type clock struct{ now time.Time }

func (c *clock) Now() time.Time { return c.now }

// host is a synthetic machine whose numbers a test sets before each look.
type host struct {
	orphans int
	groups  []snapshot.Group
	holders []snapshot.Holder
	starts  map[int]time.Time
}

func (h *host) snapshot(t time.Time) *snapshot.Snapshot {
	s := &snapshot.Snapshot{Time: t, Host: "test"}
	s.Kernel.Sockstat = &snapshot.Sockstat{SocketsUsed: 900 + h.orphans,
		TCP: snapshot.SockstatTCP{Inuse: 120, Orphan: h.orphans, TW: 40, Alloc: 130 + h.orphans, MemPages: 30 + h.orphans/4},
		UDP: snapshot.SockstatUDP{Inuse: 8, MemPages: 2}}
	s.Kernel.TCPMaxOrphans = 65536
	s.Kernel.TCPMemPages = []int64{94000, 125000, 188000}
	s.Kernel.FileNr = &snapshot.FileNr{Allocated: 4000, Max: 9223372036854775807}
	s.Kernel.PidMax = 4194304
	s.Kernel.ThreadsMax = 62000
	s.Memory.PSI = map[string]snapshot.PSI{
		"memory": {SomeAvg10: 1.25, FullAvg10: 0.5, HasFull: true},
		"cpu":    {SomeAvg10: 12.34},
	}
	s.Memory.VMStat = map[string]uint64{"pswpin": 10, "pswpout": 20, "pgmajfault": uint64(t.Sub(t0) / time.Second)}
	s.Processes.Groups = h.groups
	for _, g := range h.groups {
		s.Processes.Total += g.Count
		s.Processes.Threads += g.Threads
	}
	s.Sockets.Processes = h.holders
	for _, hd := range h.holders {
		s.Processes.List = append(s.Processes.List, snapshot.Process{PID: hd.PID, Comm: hd.Comm, StartTime: h.starts[hd.PID]})
	}
	sortProcs(s.Processes.List)
	return s
}

func sortProcs(l []snapshot.Process) {
	for i := 1; i < len(l); i++ {
		for j := i; j > 0 && l[j].PID < l[j-1].PID; j-- {
			l[j], l[j-1] = l[j-1], l[j]
		}
	}
}

func holder(pid int, comm string, tcp, unix int) snapshot.Holder {
	return snapshot.Holder{PID: pid, User: "www-data", UID: 33, Comm: comm,
		SocketCounts: snapshot.SocketCounts{TCP: tcp, Unix: unix}, Total: tcp + unix}
}

// openTest opens a store in a temporary directory without fdatasync (the
// tests record thousands of samples).
func openTest(t testing.TB, c *clock, o Options) (*Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "history.db")
	o.Now = c.Now
	o.noSync = true
	s, err := Open(path, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, path
}

func mustRecord(t testing.TB, s *Store, snap *snapshot.Snapshot) {
	t.Helper()
	if err := s.Record(snap); err != nil {
		t.Fatal(err)
	}
}

func mustQuery(t testing.TB, s *Store, series string, since, until time.Time, step time.Duration) []Point {
	t.Helper()
	p, err := s.Query(series, since, until, step)
	if err != nil {
		t.Fatalf("Query(%q): %v", series, err)
	}
	return p
}

// tierSpan is the oldest and newest key of a tier, summed over streams.
func tierSpan(t testing.TB, s *Store, st stream, tr tier) (oldest, newest time.Time, n int) {
	t.Helper()
	err := s.view(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketName(st, tr)).Cursor()
		for k, _ := c.First(); k != nil; k, _ = c.Next() {
			if n == 0 {
				oldest = time.Unix(0, keyTime(k)).UTC()
			}
			newest = time.Unix(0, keyTime(k)).UTC()
			n++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return oldest, newest, n
}

func fileSize(t testing.TB, path string) int64 {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return st.Size()
}

func storeUsed(t testing.TB, s *Store) int64 {
	t.Helper()
	var used int64
	err := s.withDB(false, func(db *bolt.DB) error {
		var err error
		used, err = usedBytes(db)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return used
}

// bigHost is the benchmark's machine: 3,000 processes in 60 crowds of
// user × command and 820 one-offs, 30,000 sockets over 206 heavy holders
// and 500 light ones.
func bigHost(rng *rand.Rand) *host {
	h := &host{orphans: 200, starts: map[int]time.Time{}}
	users := []string{"root", "www-data", "postgres", "nobody", "app"}
	h.groups = append(h.groups, snapshot.Group{User: "www-data", UID: 33, Comm: "php-fpm8.2", Count: 1000, Threads: 1000, RSSBytes: 40 << 30})
	for i := 0; i < 59; i++ {
		h.groups = append(h.groups, snapshot.Group{User: users[i%5], UID: uint32(i % 5), Comm: "worker-" + strconv.Itoa(i), Count: 20, Threads: 40, RSSBytes: 2 << 30})
	}
	for i := 0; i < 820; i++ {
		h.groups = append(h.groups, snapshot.Group{User: users[i%5], UID: uint32(i % 5), Comm: "job-" + strconv.Itoa(i), Count: 1, Threads: 1, RSSBytes: 8 << 20})
	}
	pid := 1000
	for i := 0; i < 200; i++ {
		h.holders = append(h.holders, holder(pid, "php-fpm8.2", 60+rng.IntN(20), 30+rng.IntN(10)))
		h.starts[pid] = t0.Add(-time.Duration(pid) * time.Second)
		pid++
	}
	for i := 0; i < 6; i++ {
		hd := holder(pid, "nginx", 1200, 300)
		hd.UDP = 10
		hd.Total += 10
		h.holders = append(h.holders, hd)
		h.starts[pid] = t0.Add(-time.Hour)
		pid++
	}
	for i := 0; i < 500; i++ {
		h.holders = append(h.holders, holder(pid, "job-"+strconv.Itoa(i), 1, 1))
		pid++
	}
	return h
}
