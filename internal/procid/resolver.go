package procid

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Resolver names the uids that passwd has no line for through the name
// service switch: NIS, LDAP, sssd, extrausers. picket is static
// (CGO_ENABLED=0), so Go's os/user reads /etc/passwd only and glibc's NSS
// modules are out of reach; getent(1) is glibc's own client of them.
//
// A look never waits for it: Name answers from the cache, and a uid it has
// not seen is queued for a background worker, so the name appears in a
// later look. getent is a fork and an exec, and on a host whose pid table
// is full or whose LDAP server hangs that is slow, so the worker runs one
// at a time, at most Rate a second, each bounded by Timeout; a uid that
// has no name is remembered as such (NegativeTTL), and the cache and the
// queue are bounded.
type Resolver struct {
	// Command is getent's argv before the uid (default getent passwd):
	// the uid is its own argument, never part of a shell line.
	Command     []string
	Rate        float64       // lookups a second (default 20)
	Timeout     time.Duration // per lookup (default 2 s)
	TTL         time.Duration // a name is looked up again after this (default 1 h); the old one is served meanwhile
	NegativeTTL time.Duration // a uid without a name is asked again after this (default 10 min)
	MaxEntries  int           // cache bound (default 65,536)
	MaxQueue    int           // uids waiting (default 1,024); past it, a uid waits for a later look
	Now         func() time.Time

	mu      sync.Mutex
	cache   map[uint32]resolved
	queue   []uint32
	queued  map[uint32]bool
	running bool
	lookups uint64 // getent runs, for tests and metrics
}

type resolved struct {
	name string // "" when the name service has no such uid
	at   time.Time
}

// NewResolver returns a resolver with the defaults.
func NewResolver() *Resolver { return &Resolver{} }

// HostResolver is the resolver for the host's own users: nil for another
// root (a fixture tree's users are not the name service's) or when getent
// is not installed. One is shared by the collector, which names the rows'
// uids, and the action runner, which finds the uid behind a row's name.
func HostResolver(root string) *Resolver {
	if abs, err := filepath.Abs(root); err != nil || abs != "/" {
		return nil
	}
	if _, err := exec.LookPath("getent"); err != nil {
		return nil
	}
	return NewResolver()
}

func (r *Resolver) defaults() {
	if r.cache == nil {
		r.cache, r.queued = map[uint32]resolved{}, map[uint32]bool{}
	}
	if len(r.Command) == 0 {
		r.Command = []string{"getent", "passwd"}
	}
	if r.Rate <= 0 {
		r.Rate = 20
	}
	if r.Timeout <= 0 {
		r.Timeout = 2 * time.Second
	}
	if r.TTL <= 0 {
		r.TTL = time.Hour
	}
	if r.NegativeTTL <= 0 {
		r.NegativeTTL = 10 * time.Minute
	}
	if r.MaxEntries <= 0 {
		r.MaxEntries = 1 << 16
	}
	if r.MaxQueue <= 0 {
		r.MaxQueue = 1024
	}
	if r.Now == nil {
		r.Now = time.Now
	}
}

// Name returns uid's name if the name service gave one, and queues uid
// for a lookup when it has not been asked or its answer is old. It never
// blocks on the name service.
func (r *Resolver) Name(uid uint32) (string, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.defaults()
	e, ok := r.cache[uid]
	ttl := r.TTL
	if ok && e.name == "" {
		ttl = r.NegativeTTL
	}
	if !ok || r.Now().Sub(e.at) >= ttl {
		r.enqueue(uid)
	}
	return e.name, e.name != ""
}

// UID is the uid the name service gave name, from the answers already
// cached for the uids picket has seen. A row says user=alice because its
// uid was named here, and an action aimed at alice must find that uid
// again without a fork: acting may be what a full pid table needs.
func (r *Resolver) UID(name string) (uint32, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var (
		uid   uint32
		found bool
		at    time.Time
	)
	for u, e := range r.cache {
		// Two uids may carry one name over time (an account renumbered):
		// the newest answer wins.
		if e.name == name && (!found || e.at.After(at)) {
			uid, found, at = u, true, e.at
		}
	}
	return uid, found
}

// LookupName asks the name service for name now, once, within Timeout,
// and caches the answer. It forks getent, so it is for loading a
// configuration (protect: users), never for a look or an action. ok is
// false when the name service has no such user; err when it could not
// answer.
func (r *Resolver) LookupName(ctx context.Context, name string) (uid uint32, ok bool, err error) {
	// getent takes the key as an argument: a name starting with "-" would
	// be read as an option, and ":" or a newline cannot be in a passwd
	// name at all.
	if name == "" || strings.HasPrefix(name, "-") || strings.ContainsAny(name, ":\n") {
		return 0, false, nil
	}
	r.mu.Lock()
	r.defaults()
	r.lookups++
	r.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, r.Timeout)
	defer cancel()
	argv := append(append([]string(nil), r.Command[1:]...), name)
	cmd := exec.CommandContext(ctx, r.Command[0], argv...)
	cmd.Env = []string{"PATH=/usr/bin:/bin:/usr/sbin:/sbin", "LC_ALL=C"}
	out, err := cmd.Output()
	if err != nil {
		if ee, isExit := err.(*exec.ExitError); isExit && ee.ExitCode() == 2 && ctx.Err() == nil {
			return 0, false, nil
		}
		return 0, false, fmt.Errorf("%s %s: %w", strings.Join(r.Command, " "), strconv.Quote(name), err)
	}
	line, _, _ := bytes.Cut(out, []byte("\n"))
	fields := bytes.SplitN(line, []byte(":"), 4)
	if len(fields) < 3 || string(fields[0]) != name {
		return 0, false, nil
	}
	n, perr := strconv.ParseUint(string(fields[2]), 10, 32)
	if perr != nil {
		return 0, false, nil
	}
	r.mu.Lock()
	r.store(uint32(n), name)
	r.mu.Unlock()
	return uint32(n), true, nil
}

// Lookups is how many times getent was run.
func (r *Resolver) Lookups() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.lookups
}

func (r *Resolver) enqueue(uid uint32) {
	if r.queued[uid] || len(r.queue) >= r.MaxQueue {
		return
	}
	r.queue = append(r.queue, uid)
	r.queued[uid] = true
	if !r.running {
		// The worker lives while there is work: no goroutine is left
		// behind by a collector that is dropped.
		r.running = true
		go r.work()
	}
}

func (r *Resolver) work() {
	gap := time.Duration(float64(time.Second) / r.Rate)
	for first := true; ; first = false {
		r.mu.Lock()
		if len(r.queue) == 0 {
			r.running = false
			r.mu.Unlock()
			return
		}
		uid := r.queue[0]
		r.queue = r.queue[1:]
		r.lookups++
		r.mu.Unlock()
		if !first {
			time.Sleep(gap)
		}
		name, ok := r.lookup(uid)
		r.mu.Lock()
		delete(r.queued, uid)
		if ok {
			r.store(uid, name)
		}
		r.mu.Unlock()
	}
}

// store caches an answer; past MaxEntries the expired entries go, and if
// none has expired, every negative one, then an arbitrary eighth.
func (r *Resolver) store(uid uint32, name string) {
	if _, ok := r.cache[uid]; !ok && len(r.cache) >= r.MaxEntries {
		now := r.Now()
		for k, e := range r.cache {
			if now.Sub(e.at) >= r.TTL || e.name == "" {
				delete(r.cache, k)
			}
		}
		for k := range r.cache {
			if len(r.cache) < r.MaxEntries*7/8 {
				break
			}
			delete(r.cache, k)
		}
	}
	r.cache[uid] = resolved{name: name, at: r.Now()}
}

// lookup runs getent for one uid. ok is false when the answer says nothing
// either way (getent missing, killed by the timeout, a name service down:
// exit 1 or 3), so the uid is asked again at a later look; exit 2 is
// "no such key", an answer, cached as no name.
func (r *Resolver) lookup(uid uint32) (name string, ok bool) {
	ctx, cancel := context.WithTimeout(context.Background(), r.Timeout)
	defer cancel()
	argv := append(append([]string(nil), r.Command[1:]...), strconv.FormatUint(uint64(uid), 10))
	cmd := exec.CommandContext(ctx, r.Command[0], argv...)
	cmd.Env = []string{"PATH=/usr/bin:/bin:/usr/sbin:/sbin", "LC_ALL=C"}
	out, err := cmd.Output()
	if err != nil {
		if ee, isExit := err.(*exec.ExitError); isExit && ee.ExitCode() == 2 && ctx.Err() == nil {
			return "", true
		}
		return "", false
	}
	line, _, _ := bytes.Cut(out, []byte("\n"))
	fields := bytes.SplitN(line, []byte(":"), 4)
	if len(fields) < 3 || string(fields[2]) != strconv.FormatUint(uint64(uid), 10) || len(fields[0]) == 0 {
		return "", true
	}
	return string(fields[0]), true
}
