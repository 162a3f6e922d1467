// Package history keeps picket's past: the key numbers of every snapshot,
// downsampled as they age and bounded on disk, so that doctor can say what
// the peak of the last week was and a leak can be told from a busy process.
//
// # Series
//
// A series is named by where its number sits in the snapshot's JSON, so the
// names are as stable as that contract (never renamed, only added to):
//
//	kernel.sockstat.sockets_used
//	kernel.sockstat.tcp.{inuse,orphan,tw,alloc,mem_pages}
//	kernel.sockstat.udp.{inuse,mem_pages}
//	kernel.tcp_max_orphans
//	kernel.tcp_mem_pages.high                 net.ipv4.tcp_mem[2], pages
//	kernel.file_nr.{allocated,max}
//	kernel.pid_max  kernel.threads_max
//	kernel.conntrack.{count,max}              only while nf_conntrack is loaded
//	processes.{total,threads}
//	memory.psi.{memory,cpu,io}.{some,full}_avg10
//	memory.vmstat.{pswpin,pswpout,pgmajfault} cumulative, as the kernel counts
//	beancounter.UID.RESOURCE.{held,barrier}   rows with a barrier (at most 128)
//
// and, per process, with a "/" that no host series has:
//
//	group/USER/COMM/{count,threads,rss_bytes}
//	holder/PID@START/COMM/{tcp,udp,unix,raw,netlink,packet,other,total,fds}
//	user/USER/threads                         users with an RLIMIT_NPROC, root aside
//	cgroup/PATH/{pids,working_set}            cgroups with pids.max or memory.max (at most 256)
//
// USER is the user name (the uid in decimal when it has none or holds a
// "/"), COMM the command name exactly as the kernel has it (it may hold any
// byte but NUL, "/" included: parse such a name from both ends). START is the
// process's start time in Unix seconds, so a recycled pid is a new series;
// it is left out ("holder/PID/COMM/…") when the snapshot has no process list.
// Names hold whatever a process chose: escape them before printing.
//
// A group is kept once it has at least Options.MinGroup processes, a holder
// once it holds at least Options.MinSockets sockets; from then on it is kept
// while it exists, whatever its size, and gets one last sample of 0 when it
// is gone. So a host running thousands of one-off commands stores only the
// crowds, and a storm is seen rising and falling. A holder's socket types are
// kept while they are non-zero.
//
// # Tiers
//
// Every sample is kept for Options.Raw (48 h). Compact folds complete
// minutes into 1-minute min/max/average/last for Options.Minute (7 d) and
// complete hours into 1-hour ones for Options.Hour (90 d), then deletes what
// is older; when the store holds more than Options.MaxBytes it deletes the
// oldest raw samples first, then the oldest minutes, then the oldest hours.
//
// # Storage
//
// One bbolt file (go.etcd.io/bbolt: pure Go, one file, crash-safe
// copy-on-write transactions, kept by etcd). Two of its properties shape the
// store, and are why a Store does not keep the file open:
//
//   - A writer holds an exclusive flock on the file for as long as it is
//     open, and a reader a shared one. `picket history` must read while
//     `picket run` records, so every operation opens the file, does its
//     work in one transaction and closes it again: the lock is held for
//     milliseconds, and the other side waits for it (Options.LockTimeout).
//     Opening costs a few syscalls; the page cache keeps the data warm.
//   - Reads go through an mmap of the whole file. The daemon mlockall()s
//     itself, so every page it touched would stay locked in its RSS for as
//     long as the mapping lived: a 256 MiB history would become 256 MiB of
//     daemon. Unmapping after each operation gives the pages back.
//
// SQLite in WAL mode would solve the first point too, at the price of a
// dependency many times bbolt's size and of the same write amplification
// below; neither an append-only file format of our own nor an embedded
// Prometheus TSDB was worth the code to trust.
//
// Samples are stored time-major: one value per snapshot and stream (host
// series, per-process series) holding every series' value as varints, keyed
// by time. A snapshot is then one Put of a few kilobytes appended at the
// end of a B+tree, instead of a thousand Puts scattered over a thousand
// series' pages (each of which bbolt would copy on write). Reading one series
// decodes every value in the range; the host stream is small, so the
// doctor's questions stay cheap, and per-process queries are for people.
package history

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
	"golang.org/x/sys/unix"
)

// Options configures a Store. Zero values take the defaults.
type Options struct {
	// Raw is how long every sample is kept. Default 48h; at least 1m.
	Raw time.Duration
	// Minute is how long 1-minute min/max/avg/last are kept. Default 7d;
	// at least an hour and at least Raw.
	Minute time.Duration
	// Hour is how long 1-hour min/max/avg/last are kept. Default 90d; at
	// least Minute.
	Hour time.Duration
	// MaxBytes bounds the data in the file. Default 256 MiB. Above it the
	// oldest samples are pruned (raw first); Compact also rewrites the file
	// when it has grown well past the bound, so the file on disk stays near
	// it.
	MaxBytes int64
	// MinGroup is the size, in processes, at which a user × command group
	// starts being kept. Default 5.
	MinGroup int
	// MinSockets is the number of sockets at which a process starts being
	// kept. Default 50.
	MinSockets int
	// Now is the clock (default time.Now); Record uses each snapshot's own
	// time.
	Now func() time.Time
	// ReadOnly opens an existing store for reading only (picket history):
	// nothing is created or written.
	ReadOnly bool
	// LockTimeout is how long an operation waits for another process that
	// holds the file (default 5s).
	LockTimeout time.Duration

	// noSync skips fdatasync on commit: for tests that record thousands of
	// samples, never for the daemon.
	noSync bool
}

func (o Options) withDefaults() Options {
	if o.Raw <= 0 {
		o.Raw = 48 * time.Hour
	}
	o.Raw = max(o.Raw, time.Minute)
	if o.Minute <= 0 {
		o.Minute = 7 * 24 * time.Hour
	}
	o.Minute = max(o.Minute, o.Raw, time.Hour)
	if o.Hour <= 0 {
		o.Hour = 90 * 24 * time.Hour
	}
	o.Hour = max(o.Hour, o.Minute)
	if o.MaxBytes <= 0 {
		o.MaxBytes = 256 << 20
	}
	if o.MinGroup <= 0 {
		o.MinGroup = 5
	}
	if o.MinSockets <= 0 {
		o.MinSockets = 50
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.LockTimeout <= 0 {
		o.LockTimeout = 5 * time.Second
	}
	return o
}

// Point is a series' value at a time. For a raw sample Value, Min and Max
// are the sample; for a downsampled one (or a Query step) Value is the
// average over the interval starting at Time, and Min and Max its extremes.
type Point struct {
	Time  time.Time `json:"time"`
	Value float64   `json:"value"`
	Min   float64   `json:"min"`
	Max   float64   `json:"max"`
}

// Errors a caller may test for.
var (
	ErrClosed    = errors.New("history: store is closed")
	ErrReadOnly  = errors.New("history: store is read-only")
	ErrNoSeries  = errors.New("no such series")
	errBadFormat = errors.New("history: not a picket history file")
)

// formatVersion is written to a new file and checked on open.
const formatVersion = 1

// Bucket names. Stream buckets are stream + "/" + tier.
var (
	bktMeta   = []byte("meta")
	bktSeries = []byte("series") // name -> uvarint id, scale, varint last-seen hour
	bktIDs    = []byte("ids")    // 8-byte id -> name
)

// Keys of the meta bucket.
var (
	keyFormat     = []byte("format")
	keyNextID     = []byte("next_id")
	keyMinuteDone = []byte("minute_done") // raw samples before this are folded into minutes
	keyHourDone   = []byte("hour_done")   // minutes before this are folded into hours
)

// Store is a history file. It is safe for concurrent use; it holds no file
// open between calls (see the package comment).
type Store struct {
	path string
	opts Options

	mu     sync.RWMutex // writers (Record, Compact) exclusive, readers shared
	closed bool

	// known is every series the last Record wrote, by name: the ids to
	// write without a lookup, and the per-process series that are kept
	// while they exist. next is built during a Record and swapped in.
	known, next map[string]seriesInfo
	vals        []val  // this Record's values
	buf         []byte // encoding buffer
	enc         encoder
	name        []byte // name-building buffer

	gmu    sync.Mutex // Growth's answers, reused within a step
	growth map[growthKey]growth
}

// Open opens (and, unless ReadOnly, creates) the history file at path.
func Open(path string, opts Options) (*Store, error) {
	s := &Store{path: path, opts: opts.withDefaults(),
		known: map[string]seriesInfo{}, next: map[string]seriesInfo{}}
	if s.opts.ReadOnly {
		if _, err := os.Stat(path); err != nil {
			return nil, fmt.Errorf("open history: %w", err)
		}
		err := s.view(func(tx *bolt.Tx) error {
			if m := tx.Bucket(bktMeta); m == nil || getInt(m, keyFormat) != formatVersion {
				return errBadFormat
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		return s, nil
	}
	err := s.withDB(true, func(db *bolt.DB) error {
		return db.Update(func(tx *bolt.Tx) error {
			m, err := tx.CreateBucketIfNotExists(bktMeta)
			if err != nil {
				return err
			}
			switch v := getInt(m, keyFormat); v {
			case 0:
				if m.Stats().KeyN > 0 {
					return errBadFormat
				}
				putInt(m, keyFormat, formatVersion)
				putInt(m, keyNextID, 1)
			case formatVersion:
			default:
				return fmt.Errorf("history: %s has format %d, this picket reads %d", path, v, formatVersion)
			}
			for _, b := range [][]byte{bktSeries, bktIDs} {
				if _, err := tx.CreateBucketIfNotExists(b); err != nil {
					return err
				}
			}
			for _, st := range streams {
				for _, tr := range tiers {
					if _, err := tx.CreateBucketIfNotExists(bucketName(st, tr)); err != nil {
						return err
					}
				}
			}
			return s.seedKnown(tx)
		})
	})
	if err != nil {
		return nil, err
	}
	return s, nil
}

// Close ends the store's use; it holds nothing open, so it cannot fail
// except by being called twice.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	s.closed = true
	s.known, s.next, s.vals, s.buf, s.enc = nil, nil, nil, nil, encoder{}
	return nil
}

// Path is the file's name.
func (s *Store) Path() string { return s.path }

// withDB opens the file for one operation and closes it afterwards. The
// caller holds s.mu.
func (s *Store) withDB(write bool, fn func(db *bolt.DB) error) error {
	if s.closed {
		return ErrClosed
	}
	if write && s.opts.ReadOnly {
		return ErrReadOnly
	}
	mode := os.FileMode(0o600) // process and user names are nobody else's business
	db, err := bolt.Open(s.path, mode, &bolt.Options{
		Timeout:  s.opts.LockTimeout,
		ReadOnly: !write,
		NoSync:   s.opts.noSync,
		// A hashmap freelist stays fast when retention leaves the file
		// fragmented; bbolt's array freelist degrades (its own comment).
		FreelistType: bolt.FreelistMapType,
		// Never through a symlink planted in the state directory.
		OpenFile: func(name string, flag int, perm os.FileMode) (*os.File, error) {
			return os.OpenFile(name, flag|unix.O_NOFOLLOW|unix.O_CLOEXEC, perm)
		},
	})
	if err != nil {
		if errors.Is(err, bolterrors.ErrTimeout) {
			return fmt.Errorf("history %s: busy: another process holds it for more than %v", s.path, s.opts.LockTimeout)
		}
		return fmt.Errorf("history %s: %w", s.path, err)
	}
	err = fn(db)
	if cerr := db.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("history %s: close: %w", s.path, cerr)
	}
	return err
}

// view runs fn in one read transaction. The caller holds s.mu.
func (s *Store) view(fn func(tx *bolt.Tx) error) error {
	return s.withDB(false, func(db *bolt.DB) error { return db.View(fn) })
}

// usedBytes is the size of the pages in use: the file's high-water mark
// less the free pages. It is what MaxBytes bounds.
func usedBytes(db *bolt.DB) (int64, error) {
	var hwm int64
	if err := db.View(func(tx *bolt.Tx) error { hwm = tx.Size(); return nil }); err != nil {
		return 0, err
	}
	return hwm - int64(db.Stats().FreeAlloc), nil
}

// The streams: host series in one, per-process series in the other, so the
// doctor's questions about the host never decode thousands of processes.
type stream int

const (
	hostStream stream = iota
	procStream
)

var streams = []stream{hostStream, procStream}

// The tiers, finest first.
type tier int

const (
	rawTier tier = iota
	minuteTier
	hourTier
)

var tiers = []tier{rawTier, minuteTier, hourTier}

func (t tier) resolution() time.Duration {
	switch t {
	case minuteTier:
		return time.Minute
	case hourTier:
		return time.Hour
	}
	return 0
}

func bucketName(st stream, tr tier) []byte {
	return []byte([...]string{"host", "proc"}[st] + "/" + [...]string{"raw", "1m", "1h"}[tr])
}

// timeKey is a sample's key: Unix nanoseconds, big-endian, so keys sort by
// time.
func timeKey(t time.Time) []byte {
	var k [8]byte
	binary.BigEndian.PutUint64(k[:], uint64(t.UnixNano()))
	return k[:]
}

func keyTime(k []byte) int64 { return int64(binary.BigEndian.Uint64(k)) }

func nanoKey(ns int64) []byte {
	var k [8]byte
	binary.BigEndian.PutUint64(k[:], uint64(ns))
	return k[:]
}

func getInt(b *bolt.Bucket, k []byte) int64 {
	v := b.Get(k)
	if len(v) != 8 {
		return 0
	}
	return int64(binary.BigEndian.Uint64(v))
}

func putInt(b *bolt.Bucket, k []byte, v int64) error {
	var buf [8]byte
	binary.BigEndian.PutUint64(buf[:], uint64(v))
	return b.Put(k, buf[:])
}
