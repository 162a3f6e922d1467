package notify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/picket-guard/picket/internal/alarm"
)

// ErrSpooled wraps the error of a Send whose batch could not be written
// now but is safe in the spool and will be retried: errors.Is(err,
// ErrSpooled) means nothing is lost yet. Any other error from Send means
// the batch was not kept.
var ErrSpooled = errors.New("spooled for retry")

// DispatcherOptions configures a Dispatcher.
type DispatcherOptions struct {
	// Dir is the spool directory (default Env.StateDir/spool).
	Dir string
	// Outputs are the configured notifiers by name: a spooled batch is
	// retried through the notifier of the same name. Replace them on a
	// configuration reload with SetOutputs.
	Outputs map[string]Notifier
	// Env is the clock and logger of the Dispatcher, and what rebuilds an
	// inline output from its spooled spec after a restart.
	Env Env
	// MaxAge drops a batch still undelivered this long after it was first
	// sent, with an error in the log (default 24h).
	MaxAge time.Duration
	// MaxItems and MaxBytes bound the spool (defaults 1,000 batches and
	// 32 MiB, on disk and in memory): a new batch that would pass either
	// drops the oldest ones, with an error in the log and a count in
	// Stats. An output down for a day behind a storm must not fill the
	// disk picket needs for its journal.
	MaxItems int
	MaxBytes int64
	// MinBackoff and MaxBackoff bound the wait before retrying an output
	// that failed: MinBackoff, doubling per failure in a row, at most
	// MaxBackoff (defaults 10s and 10m).
	MinBackoff, MaxBackoff time.Duration
	// AttemptTimeout bounds one Notify call (default 2m; notifiers have
	// their own, shorter, timeouts too).
	AttemptTimeout time.Duration
}

// Reasons a batch is dropped undelivered, the keys of Stats.Dropped.
const (
	DropAge       = "age"       // older than MaxAge
	DropCount     = "count"     // the spool held MaxItems batches
	DropBytes     = "bytes"     // the spool held MaxBytes
	DropPermanent = "permanent" // the receiver refused it for good
)

// Dispatcher delivers batches and keeps what could not be delivered in an
// on-disk spool, retried with exponential backoff until delivered or
// expired; a new Dispatcher on the same directory resumes the spool.
//
// Sending never waits on the network: Send writes a remote output's batch
// to the spool and wakes that output's delivery loop, one goroutine per
// output, which sends its batches one at a time, oldest first. So a mail
// server that accepts and never answers holds up its own mail and nothing
// else: not the other outputs, not the caller, not an action. No lock is
// held over a delivery.
//
// Delivery is at-least-once. A batch for a remote output (mail, webhook,
// alertmanager) is in the spool (fsynced) before it is sent and removed
// after the receiver accepted it, so a crash in between sends it again on
// restart: at most one duplicate per crash, never a loss. The spool id
// travels with every attempt (mail Message-ID, webhook Idempotency-Key and
// "delivery"), so a receiver can drop the duplicate; Alertmanager merges
// it by labels anyway. A log output is written by Send itself (a local
// write, no network) and spooled only if the write failed.
//
// Batches for one output are delivered in the order they were sent: while
// an output has batches in the spool, a new one queues behind them, so a
// resolved alert cannot overtake its firing one.
type Dispatcher struct {
	opts  DispatcherOptions
	env   Env
	log   *slog.Logger
	spool *spool

	flushMu sync.Mutex // an inline pass (Flush without Run) against Run starting

	mu      sync.Mutex
	config  map[string]Notifier     // the configured outputs, by name
	inline  map[string]Notifier     // outputs sent to that the configuration does not name
	cache   map[string]Notifier     // inline outputs by name and spec, built by Inline
	items   map[string]*spoolItem   // by id
	bytes   int64                   // spool bytes on disk
	outputs map[string]*outputState // by output name: failure streak and next retry
	loops   map[string]*loop        // by output name, while Run runs
	warned  map[string]time.Time    // missing outputs already warned about
	dropped map[string]uint64       // by reason
	runCtx  context.Context         // Run's, nil when it is not running
	loopsWG sync.WaitGroup
	closed  bool
	lastNS  int64 // the time part of the newest id: ids only grow, even if the clock steps back
}

type outputState struct {
	failures int
	next     time.Time
}

// loop is one output's delivery goroutine.
type loop struct {
	wake  chan struct{}
	flush chan chan error // a Flush asking for a pass now, backoff or not
	done  chan struct{}   // closed when the loop has ended
}

// NewDispatcher opens (and locks) the spool and loads what a previous run
// left in it.
func NewDispatcher(opts DispatcherOptions) (*Dispatcher, error) {
	env := opts.Env.withDefaults()
	if opts.Dir == "" {
		if env.StateDir == "" {
			return nil, fmt.Errorf("dispatcher: no spool directory (give Dir or Env.StateDir)")
		}
		opts.Dir = filepath.Join(env.StateDir, "spool")
	}
	if opts.MaxAge <= 0 {
		opts.MaxAge = 24 * time.Hour
	}
	if opts.MaxItems <= 0 {
		opts.MaxItems = 1000
	}
	if opts.MaxBytes <= 0 {
		opts.MaxBytes = 32 << 20
	}
	if opts.MinBackoff <= 0 {
		opts.MinBackoff = 10 * time.Second
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = 10 * time.Minute
	}
	if opts.MaxBackoff < opts.MinBackoff {
		opts.MaxBackoff = opts.MinBackoff
	}
	if opts.AttemptTimeout <= 0 {
		opts.AttemptTimeout = 2 * time.Minute
	}
	sp, err := openSpool(opts.Dir)
	if err != nil {
		return nil, err
	}
	d := &Dispatcher{opts: opts, env: env, log: env.Logger, spool: sp,
		config: map[string]Notifier{}, inline: map[string]Notifier{}, cache: map[string]Notifier{}, items: map[string]*spoolItem{},
		outputs: map[string]*outputState{}, loops: map[string]*loop{}, warned: map[string]time.Time{}, dropped: map[string]uint64{}}
	for k, n := range opts.Outputs {
		d.config[k] = n
	}
	items, err := sp.load(func(name string, err error) {
		d.log.Error("spool: unreadable item set aside", "file", filepath.Join(opts.Dir, name), "err", err)
	})
	if err != nil {
		sp.close()
		return nil, err
	}
	for _, it := range items {
		d.items[it.ID] = it
		d.bytes += it.size
		d.lastNS = max(d.lastNS, idNanos(it.ID))
	}
	if len(items) > 0 {
		d.log.Info("spool: resuming", "pending", len(items), "bytes", d.bytes, "dir", opts.Dir)
	}
	d.mu.Lock()
	d.enforceBounds(0)
	d.mu.Unlock()
	return d, nil
}

// SetOutputs replaces the notifiers known by name (a configuration
// reload). Inline outputs built by Inline are closed and forgotten: the
// next batch builds them again from the new configuration's specs.
func (d *Dispatcher) SetOutputs(outputs map[string]Notifier) {
	d.mu.Lock()
	d.config = make(map[string]Notifier, len(outputs))
	for k, n := range outputs {
		d.config[k] = n
	}
	old := d.cache
	d.cache, d.inline = map[string]Notifier{}, map[string]Notifier{}
	names := d.pendingOutputs()
	d.mu.Unlock()
	closeAll(old)
	for _, name := range names {
		d.kick(name)
	}
}

// Inline returns the notifier of an output a rule names inline (`then:
// [{webhook: {...}}]`), built once per name and spec and kept until the
// next SetOutputs: rebuilt per batch, each would open connections that
// nobody closes.
func (d *Dispatcher) Inline(name string, spec Spec) (Notifier, error) {
	key := name
	if b, err := json.Marshal(spec); err == nil {
		key += "\x00" + KindOf(spec) + "\x00" + string(b)
	}
	d.mu.Lock()
	n, ok := d.cache[key]
	d.mu.Unlock()
	if ok {
		return n, nil
	}
	n, err := New(name, spec, d.env)
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	if had, ok := d.cache[key]; ok { // built twice at once: keep the first
		d.mu.Unlock()
		closeAll(map[string]Notifier{"": n})
		return had, nil
	}
	d.cache[key] = n
	d.mu.Unlock()
	return n, nil
}

func closeAll(ns map[string]Notifier) {
	for _, n := range ns {
		if c, ok := n.(io.Closer); ok {
			c.Close()
		}
	}
}

// Reopen reopens the files of the outputs that hold one (log outputs), for
// logrotate: the daemon calls it on SIGHUP.
func (d *Dispatcher) Reopen() error {
	d.mu.Lock()
	var ns []Notifier
	for _, m := range []map[string]Notifier{d.config, d.inline, d.cache} {
		for _, n := range m {
			if _, ok := n.(Reopener); ok {
				ns = append(ns, n)
			}
		}
	}
	d.mu.Unlock()
	// One file that cannot be reopened (its directory gone) does not keep
	// the others on their rotated files; each failure names its output.
	var errs []error
	for _, n := range ns {
		if err := n.(Reopener).Reopen(); err != nil {
			errs = append(errs, fmt.Errorf("output %s: %w", n.Name(), err))
		}
	}
	return errors.Join(errs...)
}

// Close releases the spool and closes the inline outputs. Pending batches
// stay on disk for the next Dispatcher. Run must have returned.
func (d *Dispatcher) Close() error {
	d.flushMu.Lock()
	defer d.flushMu.Unlock()
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil
	}
	d.closed = true
	cache := d.cache
	d.cache = map[string]Notifier{}
	d.mu.Unlock()
	closeAll(cache)
	return d.spool.close()
}

// Pending is the number of batches in the spool.
func (d *Dispatcher) Pending() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.items)
}

// SpoolStats is what the spool holds and what it dropped.
type SpoolStats struct {
	Pending int
	Bytes   int64
	// Dropped counts batches dropped undelivered since the Dispatcher
	// started, by reason (DropAge, DropCount, DropBytes, DropPermanent).
	Dropped map[string]uint64
}

// Stats reports the spool's size and drops.
func (d *Dispatcher) Stats() SpoolStats {
	d.mu.Lock()
	defer d.mu.Unlock()
	st := SpoolStats{Pending: len(d.items), Bytes: d.bytes, Dropped: make(map[string]uint64, 4)}
	for _, r := range []string{DropAge, DropCount, DropBytes, DropPermanent} {
		st.Dropped[r] = d.dropped[r]
	}
	return st
}

// Send hands b to n's output. A remote output's batch is written to the
// spool and its delivery loop woken; a log output is written now, and
// spooled only if that failed (the error then wraps ErrSpooled). Send
// returns nil once the batch is delivered or safe in the spool; any other
// error means it is lost (the spool could not be written, or a log output
// refused it for good). It never waits on the network.
func (d *Dispatcher) Send(ctx context.Context, n Notifier, b alarm.Batch) error {
	if len(b.Alarms) == 0 {
		return nil
	}
	if f, ok := n.(fanout); ok {
		if ts := f.targets(); len(ts) > 0 {
			// Each target is an output of its own here: its own batch in
			// the spool, its own delivery loop and backoff, and its spec
			// spooled with the batch (as an inline output's), so a restart
			// delivers it whatever the configuration says by then.
			var errs []error
			for _, t := range ts {
				if err := d.Send(ctx, t, b); err != nil {
					errs = append(errs, err)
				}
			}
			return errors.Join(errs...)
		}
	}
	name := n.Name()
	now := d.env.Now()
	it := &spoolItem{Version: spoolVersion, Output: name, Created: now, Batch: b}

	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return fmt.Errorf("output %s: dispatcher closed", name)
	}
	d.lastNS = max(d.lastNS+1, now.UnixNano())
	it.ID = newID(d.lastNS)
	if _, ok := d.config[name]; !ok {
		// An output the configuration does not name (inline in a rule):
		// keep its spec so a restart can rebuild it.
		d.inline[name] = n
		it.Kind, it.Spec = specJSON(n)
	}
	queued := d.pendingForLocked(name) > 0
	d.mu.Unlock()

	isLocal := false
	if k := kindOfSpec(specOf(n)); k != nil {
		isLocal = k.local
	}
	if isLocal && !queued {
		err := d.attempt(ctx, n, it)
		switch {
		case err == nil:
			d.succeeded(name)
			return nil
		case IsPermanent(err):
			d.countDrop(DropPermanent, 1)
			d.log.Error("notify: permanent failure, batch dropped", "output", name, "rule", b.Rule, "err", err)
			return fmt.Errorf("output %s: %w", name, err)
		}
		wait := d.failed(name, now)
		it.Attempts, it.LastAttempt, it.LastError = 1, now, textSafe(err.Error())
		if serr := d.store(it); serr != nil {
			return fmt.Errorf("output %s: %v; and %w (batch lost)", name, err, serr)
		}
		d.log.Warn("notify: delivery failed, spooled", "output", name, "rule", b.Rule, "retry_in", wait, "err", err)
		d.kick(name)
		return fmt.Errorf("output %s: %w: %v", name, ErrSpooled, err)
	}
	// Write-ahead: on disk before anything is sent.
	if err := d.store(it); err != nil {
		return fmt.Errorf("output %s: %w (batch lost)", name, err)
	}
	d.kick(name)
	return nil
}

// fanout is an output delivered as several: an Alertmanager cluster,
// whose every member gets every alert (the cluster deduplicates), each
// on its own so one member down holds up none of the others.
type fanout interface {
	Notifier
	targets() []Notifier
}

// specOf is the spec New built n from; nil for a Notifier New did not
// build (a test's, or one wrapping another), which is then remote and, if
// inline, not rebuilt after a restart.
func specOf(n Notifier) Spec {
	if h, ok := n.(specNotifier); ok {
		return h.spec()
	}
	return nil
}

func specJSON(n Notifier) (string, json.RawMessage) {
	s := specOf(n)
	k := kindOfSpec(s)
	if k == nil {
		return "", nil
	}
	b, err := json.Marshal(s)
	if err != nil {
		return "", nil
	}
	return k.name, b
}

// attempt runs one Notify with the attempt timeout and the delivery id.
func (d *Dispatcher) attempt(ctx context.Context, n Notifier, it *spoolItem) (err error) {
	ctx, cancel := context.WithTimeout(WithDeliveryID(ctx, it.ID), d.opts.AttemptTimeout)
	defer cancel()
	defer func() {
		// A notifier bug must not take the daemon down with the alarm.
		if r := recover(); r != nil {
			err = fmt.Errorf("notifier %s panicked: %v", n.Name(), r)
		}
	}()
	return n.Notify(ctx, it.Batch)
}

// store writes it to disk and indexes it, making room first: past
// MaxItems or MaxBytes the oldest batches are dropped.
func (d *Dispatcher) store(it *spoolItem) error {
	size, err := d.spool.write(it)
	if err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if old, ok := d.items[it.ID]; ok { // an attempt recorded: same batch, new size
		d.bytes -= old.size
	}
	it.size = size
	d.items[it.ID] = it
	d.bytes += size
	d.enforceBounds(1)
	return nil
}

// enforceBounds drops the oldest batches while the spool holds more than
// MaxItems or MaxBytes, sparing the newest keep ones. Called with d.mu
// held.
func (d *Dispatcher) enforceBounds(keep int) {
	if len(d.items) <= d.opts.MaxItems && d.bytes <= d.opts.MaxBytes {
		return
	}
	ids := make([]string, 0, len(d.items))
	for id := range d.items {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	var n [2]int
	for _, id := range ids[:max(len(ids)-keep, 0)] {
		reason := -1
		switch {
		case len(d.items) > d.opts.MaxItems:
			reason = 0
		case d.bytes > d.opts.MaxBytes:
			reason = 1
		}
		if reason < 0 {
			break
		}
		it := d.items[id]
		if err := d.spool.remove(id); err != nil {
			d.log.Error("spool: cannot remove a batch to make room", "id", id, "err", err)
		}
		delete(d.items, id)
		d.bytes -= it.size
		n[reason]++
	}
	if n[0]+n[1] > 0 {
		d.dropped[DropCount] += uint64(n[0])
		d.dropped[DropBytes] += uint64(n[1])
		d.log.Error("spool full: oldest undelivered batches dropped", "dropped", n[0]+n[1],
			"max_items", d.opts.MaxItems, "max_bytes", d.opts.MaxBytes, "pending", len(d.items))
	}
}

func (d *Dispatcher) countDrop(reason string, n int) {
	d.mu.Lock()
	d.dropped[reason] += uint64(n)
	d.mu.Unlock()
}

// drop removes it from disk and the index.
func (d *Dispatcher) drop(it *spoolItem) {
	if err := d.spool.remove(it.ID); err != nil {
		d.log.Error("spool: cannot remove a delivered batch (it may be sent again)", "id", it.ID, "err", err)
	}
	d.mu.Lock()
	if had, ok := d.items[it.ID]; ok {
		d.bytes -= had.size
		delete(d.items, it.ID)
	}
	d.mu.Unlock()
}

func (d *Dispatcher) pendingFor(name string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.pendingForLocked(name)
}

func (d *Dispatcher) pendingForLocked(name string) int {
	n := 0
	for _, it := range d.items {
		if it.Output == name {
			n++
		}
	}
	return n
}

// pendingOutputs names the outputs with batches in the spool, sorted.
// Called with d.mu held.
func (d *Dispatcher) pendingOutputs() []string {
	seen := map[string]bool{}
	var out []string
	for _, it := range d.items {
		if !seen[it.Output] {
			seen[it.Output] = true
			out = append(out, it.Output)
		}
	}
	sort.Strings(out)
	return out
}

func (d *Dispatcher) succeeded(name string) {
	d.mu.Lock()
	delete(d.outputs, name)
	d.mu.Unlock()
}

// failed records a failure of output name and returns the wait before the
// next try.
func (d *Dispatcher) failed(name string, now time.Time) time.Duration {
	d.mu.Lock()
	defer d.mu.Unlock()
	st := d.outputs[name]
	if st == nil {
		st = &outputState{}
		d.outputs[name] = st
	}
	st.failures++
	wait := d.opts.MinBackoff
	for i := 1; i < st.failures && wait < d.opts.MaxBackoff; i++ {
		wait *= 2
	}
	wait = min(wait, d.opts.MaxBackoff)
	st.next = now.Add(wait)
	return wait
}

// Run delivers until ctx is done: one loop per output with batches in the
// spool, started as batches arrive, each retrying its output when its
// backoff has passed. When ctx is done an attempt under way is cancelled
// (its batch stays in the spool for the next start) and Run returns nil
// once every loop has stopped.
func (d *Dispatcher) Run(ctx context.Context) error {
	d.flushMu.Lock()
	d.mu.Lock()
	if d.runCtx != nil || d.closed {
		d.mu.Unlock()
		d.flushMu.Unlock()
		return errors.New("dispatcher: already running or closed")
	}
	d.runCtx = ctx
	names := d.pendingOutputs()
	d.mu.Unlock()
	d.flushMu.Unlock()
	for _, name := range names {
		d.kick(name)
	}
	<-ctx.Done()
	d.mu.Lock()
	d.runCtx = nil
	d.mu.Unlock()
	d.loopsWG.Wait()
	return nil
}

// kick wakes name's delivery loop, starting it if Run runs and it does
// not exist yet.
func (d *Dispatcher) kick(name string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.runCtx == nil || d.runCtx.Err() != nil {
		return
	}
	l := d.loops[name]
	if l == nil {
		l = &loop{wake: make(chan struct{}, 1), flush: make(chan chan error), done: make(chan struct{})}
		d.loops[name] = l
		d.loopsWG.Add(1)
		go d.deliverLoop(d.runCtx, name, l)
	}
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// deliverLoop is output name's one sender. It ends when ctx is done, or
// when the output has nothing pending (the next Send starts it again).
func (d *Dispatcher) deliverLoop(ctx context.Context, name string, l *loop) {
	defer d.loopsWG.Done()
	defer close(l.done)
	for {
		wait, _ := d.deliverOutput(ctx, name, true)
		if wait < 0 {
			d.mu.Lock()
			if d.pendingForLocked(name) == 0 {
				delete(d.loops, name)
				d.mu.Unlock()
				return
			}
			d.mu.Unlock()
			wait = 0
		}
		t := time.NewTimer(max(wait, 10*time.Millisecond))
		select {
		case <-ctx.Done():
			t.Stop()
			d.mu.Lock()
			delete(d.loops, name)
			d.mu.Unlock()
			return
		case <-l.wake:
		case reply := <-l.flush:
			_, err := d.deliverOutput(ctx, name, false)
			reply <- err
		case <-t.C:
		}
		t.Stop()
	}
}

// Flush tries every output with pending batches now, backoff or not (a
// last try, and tests), and returns the outputs that still failed. While
// Run runs it asks each output's loop, so a delivery never runs twice at
// once; otherwise it delivers itself.
func (d *Dispatcher) Flush(ctx context.Context) error {
	d.mu.Lock()
	running := d.runCtx != nil
	d.mu.Unlock()
	if !running {
		return d.pass(ctx, false)
	}
	d.mu.Lock()
	names := d.pendingOutputs()
	d.mu.Unlock()
	var errs []error
	for _, name := range names {
		d.kick(name)
		d.mu.Lock()
		l := d.loops[name]
		d.mu.Unlock()
		if l == nil {
			continue
		}
		reply := make(chan error, 1)
		select {
		case l.flush <- reply:
		case <-l.done: // it ended: nothing left for it, or Run is stopping
			continue
		case <-ctx.Done():
			return errors.Join(append(errs, ctx.Err())...)
		}
		select {
		case err := <-reply:
			if err != nil {
				errs = append(errs, err)
			}
		case <-ctx.Done():
			return errors.Join(append(errs, ctx.Err())...)
		}
	}
	return errors.Join(errs...)
}

// nextDue is the earliest time an output with pending batches may be
// tried again.
func (d *Dispatcher) nextDue() (time.Time, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	var next time.Time
	found := false
	for _, it := range d.items {
		t := it.Created
		if st := d.outputs[it.Output]; st != nil {
			t = st.next
		}
		if expiry := it.Created.Add(d.opts.MaxAge); expiry.Before(t) {
			t = expiry
		}
		if !found || t.Before(next) {
			next, found = t, true
		}
	}
	return next, found
}

// pass tries every output with pending batches in this goroutine (only
// those whose backoff has passed when dueOnly): Flush without Run, and
// tests. Run's loops do the same per output.
func (d *Dispatcher) pass(ctx context.Context, dueOnly bool) error {
	d.flushMu.Lock()
	defer d.flushMu.Unlock()
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return fmt.Errorf("dispatcher closed")
	}
	names := d.pendingOutputs()
	d.mu.Unlock()
	var errs []error
	for _, name := range names {
		if ctx.Err() != nil {
			errs = append(errs, ctx.Err())
			break
		}
		if _, err := d.deliverOutput(ctx, name, dueOnly); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// deliverOutput sends output name's pending batches, oldest first,
// stopping at the first failure (only once its backoff has passed when
// dueOnly). It returns how long until the output is due again (-1: nothing
// left), and the failure.
func (d *Dispatcher) deliverOutput(ctx context.Context, name string, dueOnly bool) (time.Duration, error) {
	now := d.env.Now()
	d.mu.Lock()
	var items []*spoolItem
	for _, it := range d.items {
		if it.Output == name {
			items = append(items, it)
		}
	}
	st := d.outputs[name]
	var next time.Time
	if st != nil {
		next = st.next
	}
	d.mu.Unlock()
	sort.Slice(items, func(i, j int) bool { return items[i].ID < items[j].ID })
	// Expired batches go first, due or not.
	live := items[:0]
	for _, it := range items {
		if now.Sub(it.Created) > d.opts.MaxAge {
			d.log.Error("notify: batch expired undelivered, dropped", "output", name, "rule", it.Batch.Rule,
				"alarms", len(it.Batch.Alarms), "created", it.Created, "attempts", it.Attempts, "last_error", it.LastError)
			d.drop(it)
			d.countDrop(DropAge, 1)
			continue
		}
		live = append(live, it)
	}
	if len(live) == 0 {
		return -1, nil
	}
	if dueOnly && now.Before(next) {
		return next.Sub(now), nil
	}
	n, err := d.notifier(name, live[0])
	if err != nil {
		wait := d.failed(name, now)
		d.mu.Lock()
		last, warned := d.warned[name]
		if !warned || now.Sub(last) >= 10*time.Minute {
			d.warned[name] = now
			d.mu.Unlock()
			d.log.Warn("notify: spooled batches for an output that no longer exists stay until they expire",
				"output", name, "pending", len(live), "err", err, "retry_in", wait)
		} else {
			d.mu.Unlock()
		}
		return wait, fmt.Errorf("output %s: %w", name, err)
	}
	for _, it := range live {
		if !d.stillPending(it.ID) {
			continue
		}
		err := d.attempt(ctx, n, it)
		if err == nil {
			d.drop(it)
			d.log.Info("notify: batch delivered", "output", name, "rule", it.Batch.Rule, "attempts", it.Attempts+1)
			continue
		}
		if IsPermanent(err) {
			d.drop(it)
			d.countDrop(DropPermanent, 1)
			d.log.Error("notify: permanent failure, batch dropped", "output", name, "rule", it.Batch.Rule, "err", err)
			continue
		}
		if ctx.Err() != nil {
			// Stopping: the batch stays for the next start, its attempt
			// not counted against the output.
			return -1, fmt.Errorf("output %s: %w", name, ctx.Err())
		}
		it.Attempts++
		it.LastAttempt, it.LastError = now, textSafe(err.Error())
		if d.stillPending(it.ID) {
			if serr := d.store(it); serr != nil {
				d.log.Error("spool: cannot record an attempt", "id", it.ID, "err", serr)
			}
		}
		wait := d.failed(name, now)
		d.log.Warn("notify: delivery failed, spooled", "output", name, "rule", it.Batch.Rule, "pending", d.pendingFor(name), "retry_in", wait, "err", err)
		return wait, fmt.Errorf("output %s: %w", name, err)
	}
	d.succeeded(name)
	if d.pendingFor(name) > 0 { // sent meanwhile
		return 0, nil
	}
	return -1, nil
}

func (d *Dispatcher) stillPending(id string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	_, ok := d.items[id]
	return ok
}

// notifier finds the notifier for a spooled batch: the configured output of
// that name, else one rebuilt from the spec spooled with it.
func (d *Dispatcher) notifier(name string, it *spoolItem) (Notifier, error) {
	d.mu.Lock()
	n, ok := d.config[name]
	if !ok {
		n, ok = d.inline[name]
	}
	d.mu.Unlock()
	if ok {
		return n, nil
	}
	if it.Kind == "" {
		return nil, fmt.Errorf("no output named %q in the configuration", name)
	}
	spec, ok := NewSpec(it.Kind)
	if !ok {
		return nil, fmt.Errorf("spooled output %q: unknown kind %q", name, it.Kind)
	}
	if err := json.Unmarshal(it.Spec, spec); err != nil {
		return nil, fmt.Errorf("spooled output %q: spec: %w", name, err)
	}
	n, err := d.Inline(name, spec)
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	d.inline[name] = n
	d.mu.Unlock()
	return n, nil
}
