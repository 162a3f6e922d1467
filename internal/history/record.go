package history

import (
	"encoding/binary"
	"fmt"
	"slices"
	"sort"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/picket-guard/picket/internal/snapshot"
)

// seriesInfo is a series' entry in the dictionary.
type seriesInfo struct {
	name  string
	id    uint64
	scale int8
	seen  int64 // Unix hour last written to the dictionary (for GC)
	slot  int   // index into Store.vals during a Record
}

// maxNameLen bounds a series name (a user name is the only long part).
const maxNameLen = 1024

func encodeInfo(e seriesInfo) []byte {
	b := binary.AppendUvarint(nil, e.id)
	b = append(b, byte(e.scale))
	return binary.AppendVarint(b, e.seen)
}

func decodeInfo(name string, v []byte) (seriesInfo, error) {
	e := seriesInfo{name: name}
	id, n := binary.Uvarint(v)
	if n <= 0 || len(v) < n+1 {
		return e, fmt.Errorf("history: corrupt dictionary entry for %q", name)
	}
	e.id, e.scale = id, int8(v[n])
	seen, m := binary.Varint(v[n+1:])
	if m <= 0 || e.scale < 0 || int(e.scale) >= len(pow10) {
		return e, fmt.Errorf("history: corrupt dictionary entry for %q", name)
	}
	e.seen = seen
	return e, nil
}

func idKey(id uint64) []byte {
	var k [8]byte
	binary.BigEndian.PutUint64(k[:], id)
	return k[:]
}

// Record stores one sample of every series in the snapshot at snap.Time,
// in one transaction (one fdatasync). The per-process series are filtered
// as the package comment says.
func (s *Store) Record(snap *snapshot.Snapshot) error {
	if snap == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	t := snap.Time
	if t.IsZero() {
		t = s.opts.Now()
	}
	return s.withDB(true, func(db *bolt.DB) error {
		err := db.Update(func(tx *bolt.Tx) error { return s.record(tx, snap, t) })
		if err != nil {
			clear(s.next) // ids handed out in the failed transaction are not ours
			return fmt.Errorf("history: record: %w", err)
		}
		s.known, s.next = s.next, s.known
		clear(s.next)
		used, err := usedBytes(db)
		if err != nil || used <= s.opts.MaxBytes {
			return err
		}
		return s.prune(db)
	})
}

// recorder is one Record's transaction.
type recorder struct {
	s      *Store
	series *bolt.Bucket
	ids    *bolt.Bucket
	meta   *bolt.Bucket
	hour   int64
	err    error
}

func (s *Store) record(tx *bolt.Tx, snap *snapshot.Snapshot, t time.Time) error {
	r := &recorder{s: s, series: tx.Bucket(bktSeries), ids: tx.Bucket(bktIDs), meta: tx.Bucket(bktMeta),
		hour: t.Unix() / 3600}
	if r.series == nil || r.ids == nil || r.meta == nil {
		return errBadFormat
	}
	clear(s.next)
	s.vals = s.vals[:0]

	hostValues(snap, func(name string, v float64) {
		s.name = append(s.name[:0], name...)
		r.add(v, false)
	})

	for i := range snap.Processes.Groups {
		g := &snap.Processes.Groups[i]
		s.name = appendGroup(s.name[:0], g.User, g.UID, g.Comm, "count")
		if _, kept := s.known[string(s.name)]; !kept && g.Count < s.opts.MinGroup {
			continue
		}
		r.add(float64(g.Count), true)
		s.name = appendGroup(s.name[:0], g.User, g.UID, g.Comm, "threads")
		r.add(float64(g.Threads), true)
		s.name = appendGroup(s.name[:0], g.User, g.UID, g.Comm, "rss_bytes")
		r.add(float64(g.RSSBytes), true)
	}

	starts := newStartIndex(snap.Processes.List)
	for i := range snap.Sockets.Processes {
		h := &snap.Sockets.Processes[i]
		start, hasStart := starts.lookup(h.PID)
		s.name = appendHolder(s.name[:0], h.PID, start, hasStart, h.Comm, "total")
		if _, kept := s.known[string(s.name)]; !kept && h.Total < s.opts.MinSockets {
			continue
		}
		r.add(float64(h.Total), true)
		if h.FDs >= 0 {
			s.name = appendHolder(s.name[:0], h.PID, start, hasStart, h.Comm, "fds")
			r.add(float64(h.FDs), true)
		}
		for j, n := range socketCounts(h.SocketCounts) {
			if n != 0 {
				s.name = appendHolder(s.name[:0], h.PID, start, hasStart, h.Comm, socketTypes[j])
				r.add(float64(n), true)
			}
		}
	}
	// The per-user and per-cgroup counts the forecasts fit against a
	// limit: users with an RLIMIT_NPROC (root is exempt), cgroups with a
	// pids.max or memory.max.
	for _, u := range snap.Processes.Users {
		if u.UID != 0 && u.NprocLimit > 0 {
			s.name = append(s.name[:0], UserSeries(u.User, u.UID, "threads")...)
			r.add(float64(u.Threads), true)
		}
	}
	ncg := 0
	for i := range snap.Cgroups {
		c := &snap.Cgroups[i]
		if c.Path == "/" || (c.PidsMax == nil && c.MemoryMax == nil) {
			continue
		}
		if ncg++; ncg > maxCgroupSeries {
			break
		}
		if c.PidsMax != nil && c.PidsCurrent != nil {
			s.name = append(s.name[:0], CgroupSeries(c.Path, "pids")...)
			r.add(float64(*c.PidsCurrent), true)
		}
		if c.MemoryMax != nil && c.MemoryCurrent != nil {
			s.name = append(s.name[:0], CgroupSeries(c.Path, "working_set")...)
			r.add(float64(c.WorkingSet()), true)
		}
	}
	if r.err != nil {
		return r.err
	}

	// A per-process series written last time and not now is gone (the
	// process exited, the group emptied, a socket type closed): one 0 says
	// so, and it is not kept further.
	for name, e := range s.known {
		if _, ok := s.next[name]; !ok && isProcSeries(name) {
			s.vals = append(s.vals, val{id: e.id, proc: true})
		}
	}

	slices.SortFunc(s.vals, func(a, b val) int {
		if a.proc != b.proc {
			if b.proc {
				return -1
			}
			return 1
		}
		if a.id < b.id {
			return -1
		}
		if a.id > b.id {
			return 1
		}
		return 0
	})
	split := sort.Search(len(s.vals), func(i int) bool { return s.vals[i].proc })
	key := timeKey(t)
	// bbolt keeps a Put's value until commit: the two values share s.buf
	// one after the other, never overwriting each other.
	host := s.enc.raw(s.buf[:0], s.vals[:split])
	if err := tx.Bucket(bucketName(hostStream, rawTier)).Put(key, host); err != nil {
		return err
	}
	if split < len(s.vals) {
		proc := s.enc.raw(host[len(host):], s.vals[split:])
		if err := tx.Bucket(bucketName(procStream, rawTier)).Put(key, proc); err != nil {
			return err
		}
		s.buf = proc[:0]
	} else {
		s.buf = host[:0]
	}
	return nil
}

// add appends the value of the series named s.name.
func (r *recorder) add(v float64, proc bool) {
	s := r.s
	if r.err != nil || len(s.name) > maxNameLen {
		return
	}
	if e, ok := s.next[string(s.name)]; ok {
		// Two groups under one name (two uids sharing a user name): one
		// series, their sum.
		s.vals[e.slot].v += toStored(v, e.scale)
		return
	}
	e, ok := s.known[string(s.name)]
	if !ok {
		var err error
		if e, err = r.resolve(); err != nil {
			r.err = err
			return
		}
	}
	if e.seen < r.hour {
		e.seen = r.hour
		if err := r.series.Put([]byte(e.name), encodeInfo(e)); err != nil {
			r.err = err
			return
		}
	}
	e.slot = len(s.vals)
	s.vals = append(s.vals, val{id: e.id, v: toStored(v, e.scale), proc: proc})
	s.next[e.name] = e
}

// resolve finds s.name in the dictionary, adding it when new.
func (r *recorder) resolve() (seriesInfo, error) {
	name := string(r.s.name)
	if v := r.series.Get(r.s.name); v != nil {
		return decodeInfo(name, v)
	}
	id := getInt(r.meta, keyNextID)
	if id <= 0 {
		return seriesInfo{}, errBadFormat
	}
	if err := putInt(r.meta, keyNextID, id+1); err != nil {
		return seriesInfo{}, err
	}
	e := seriesInfo{name: name, id: uint64(id), scale: scaleOf(name), seen: -1}
	return e, r.ids.Put(idKey(e.id), []byte(name))
}

// seedKnown fills s.known with the per-process series of the last sample
// stored, so a restart neither forgets which groups and holders are kept
// nor misses their last 0.
func (s *Store) seedKnown(tx *bolt.Tx) error {
	_, v := tx.Bucket(bucketName(procStream, rawTier)).Cursor().Last()
	if v == nil {
		return nil
	}
	series, ids := tx.Bucket(bktSeries), tx.Bucket(bktIDs)
	d := newDecoder(v)
	var a agg
	for d.next(&a) {
		if a.last == 0 {
			continue // its last sample said it was gone
		}
		name := ids.Get(idKey(a.id))
		if name == nil {
			continue
		}
		sv := series.Get(name)
		if sv == nil {
			continue
		}
		e, err := decodeInfo(string(name), sv)
		if err != nil {
			return err
		}
		s.known[e.name] = e
	}
	return d.err
}

// startIndex finds a process's start time by pid in the snapshot's process
// list, which the collector returns in pid order (binary search, no map);
// an unsorted list is indexed once.
type startIndex struct {
	list   []snapshot.Process
	sorted bool
	byPID  map[int]int64
}

func newStartIndex(list []snapshot.Process) startIndex {
	x := startIndex{list: list, sorted: slices.IsSortedFunc(list, func(a, b snapshot.Process) int { return a.PID - b.PID })}
	return x
}

func (x *startIndex) lookup(pid int) (int64, bool) {
	if len(x.list) == 0 {
		return 0, false
	}
	if x.sorted {
		i, ok := slices.BinarySearchFunc(x.list, pid, func(p snapshot.Process, pid int) int { return p.PID - pid })
		if !ok || x.list[i].StartTime.IsZero() {
			return 0, false
		}
		return x.list[i].StartTime.Unix(), true
	}
	if x.byPID == nil {
		x.byPID = make(map[int]int64, len(x.list))
		for _, p := range x.list {
			if !p.StartTime.IsZero() {
				x.byPID[p.PID] = p.StartTime.Unix()
			}
		}
	}
	st, ok := x.byPID[pid]
	return st, ok
}
