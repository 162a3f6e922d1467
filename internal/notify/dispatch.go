package notify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/picket-guard/picket/internal/alarm"
)

// ErrSpooled wraps the error of a Send that failed now but is safe in the
// spool and will be retried: errors.Is(err, ErrSpooled) means nothing is
// lost yet. Any other error from Send means the batch was not kept.
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
	// MinBackoff and MaxBackoff bound the wait before retrying an output
	// that failed: MinBackoff, doubling per failure in a row, at most
	// MaxBackoff (defaults 10s and 10m).
	MinBackoff, MaxBackoff time.Duration
	// AttemptTimeout bounds one Notify call (default 2m; notifiers have
	// their own, shorter, timeouts too).
	AttemptTimeout time.Duration
}

// Dispatcher delivers batches and keeps what could not be delivered in an
// on-disk spool, retried with exponential backoff until delivered or
// expired; a new Dispatcher on the same directory resumes the spool.
//
// Delivery is at-least-once. A batch for a remote output (mail, webhook,
// alertmanager) is written to the spool (fsynced) before it is sent and
// removed after the receiver accepted it, so a crash in between sends it
// again on restart: at most one duplicate per crash, never a loss. The
// spool id travels with every attempt (mail Message-ID, webhook
// Idempotency-Key and "delivery"), so a receiver can drop the duplicate;
// Alertmanager merges it by labels anyway. A log output is written first
// and spooled only if the write failed (a crash mid-write loses that line).
//
// Batches for one output are delivered in the order they were sent: while
// an output has batches in the spool, a new one queues behind them, so a
// resolved alert cannot overtake its firing one.
type Dispatcher struct {
	opts   DispatcherOptions
	env    Env
	log    *slog.Logger
	spool  *spool
	wakeCh chan struct{}

	flushMu sync.Mutex // one pass at a time

	mu      sync.Mutex
	config  map[string]Notifier     // the configured outputs, by name
	inline  map[string]Notifier     // outputs sent to that the configuration does not name
	items   map[string]*spoolItem   // by id
	outputs map[string]*outputState // by output name: failure streak and next retry
	locks   map[string]*sync.Mutex  // by output name: one delivery at a time, in order
	warned  map[string]time.Time    // missing outputs already warned about
	closed  bool
	lastNS  int64 // the time part of the newest id: ids only grow, even if the clock steps back
}

type outputState struct {
	failures int
	next     time.Time
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
	d := &Dispatcher{opts: opts, env: env, log: env.Logger, spool: sp, wakeCh: make(chan struct{}, 1),
		config: map[string]Notifier{}, inline: map[string]Notifier{}, items: map[string]*spoolItem{}, outputs: map[string]*outputState{},
		locks: map[string]*sync.Mutex{}, warned: map[string]time.Time{}}
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
		d.lastNS = max(d.lastNS, idNanos(it.ID))
	}
	if len(items) > 0 {
		d.log.Info("spool: resuming", "pending", len(items), "dir", opts.Dir)
	}
	return d, nil
}

// SetOutputs replaces the notifiers known by name (a configuration reload).
func (d *Dispatcher) SetOutputs(outputs map[string]Notifier) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.config = make(map[string]Notifier, len(outputs))
	for k, n := range outputs {
		d.config[k] = n
	}
	d.wake()
}

// Reopen reopens the files of the outputs that hold one (log outputs), for
// logrotate: the daemon calls it on SIGHUP.
func (d *Dispatcher) Reopen() error {
	d.mu.Lock()
	var rs []Reopener
	for _, m := range []map[string]Notifier{d.config, d.inline} {
		for _, n := range m {
			if r, ok := n.(Reopener); ok {
				rs = append(rs, r)
			}
		}
	}
	d.mu.Unlock()
	var errs []error
	for _, r := range rs {
		if err := r.Reopen(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Close releases the spool. Pending batches stay on disk for the next
// Dispatcher.
func (d *Dispatcher) Close() error {
	d.flushMu.Lock()
	defer d.flushMu.Unlock()
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil
	}
	d.closed = true
	return d.spool.close()
}

// Pending is the number of batches in the spool.
func (d *Dispatcher) Pending() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.items)
}

func (d *Dispatcher) wake() {
	select {
	case d.wakeCh <- struct{}{}:
	default:
	}
}

func (d *Dispatcher) outputLock(name string) *sync.Mutex {
	d.mu.Lock()
	defer d.mu.Unlock()
	l, ok := d.locks[name]
	if !ok {
		l = &sync.Mutex{}
		d.locks[name] = l
	}
	return l
}

// Send delivers b through n now, unless n's output already has batches
// waiting (then b queues behind them). What is not delivered is spooled and
// the error wraps ErrSpooled. A Permanent error is returned as is: the
// batch is dropped, since retrying cannot help.
func (d *Dispatcher) Send(ctx context.Context, n Notifier, b alarm.Batch) error {
	if len(b.Alarms) == 0 {
		return nil
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
	d.mu.Unlock()

	lock := d.outputLock(name)
	lock.Lock()
	defer lock.Unlock()

	isLocal := false
	if k := kindOfSpec(specOf(n)); k != nil {
		isLocal = k.local
	}
	queued := d.pendingFor(name) > 0
	if !isLocal || queued {
		// Write-ahead: on disk before anything is sent.
		if err := d.store(it); err != nil {
			return fmt.Errorf("output %s: %w (batch lost)", name, err)
		}
	}
	if queued {
		d.wake()
		return fmt.Errorf("output %s: %w: queued behind %d earlier batches", name, ErrSpooled, d.pendingFor(name)-1)
	}
	err := d.attempt(ctx, n, it)
	switch {
	case err == nil:
		if !isLocal {
			d.drop(it)
		}
		d.succeeded(name)
		return nil
	case IsPermanent(err):
		if !isLocal {
			d.drop(it)
		}
		d.log.Error("notify: permanent failure, batch dropped", "output", name, "rule", b.Rule, "err", err)
		return fmt.Errorf("output %s: %w", name, err)
	}
	wait := d.failed(name, now)
	it.Attempts, it.LastAttempt, it.LastError = 1, now, textSafe(err.Error())
	if serr := d.store(it); serr != nil {
		if isLocal {
			return fmt.Errorf("output %s: %v; and %w (batch lost)", name, err, serr)
		}
		// The write-ahead copy is still there; only the attempt count
		// was not recorded.
		d.log.Error("spool: cannot record an attempt", "id", it.ID, "err", serr)
	}
	d.log.Warn("notify: delivery failed, spooled", "output", name, "rule", b.Rule, "retry_in", wait, "err", err)
	d.wake()
	return fmt.Errorf("output %s: %w: %v", name, ErrSpooled, err)
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

// store writes it to disk and indexes it.
func (d *Dispatcher) store(it *spoolItem) error {
	if err := d.spool.write(it); err != nil {
		return err
	}
	d.mu.Lock()
	d.items[it.ID] = it
	d.mu.Unlock()
	return nil
}

// drop removes it from disk and the index.
func (d *Dispatcher) drop(it *spoolItem) {
	if err := d.spool.remove(it.ID); err != nil {
		d.log.Error("spool: cannot remove a delivered batch (it may be sent again)", "id", it.ID, "err", err)
	}
	d.mu.Lock()
	delete(d.items, it.ID)
	d.mu.Unlock()
}

func (d *Dispatcher) pendingFor(name string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := 0
	for _, it := range d.items {
		if it.Output == name {
			n++
		}
	}
	return n
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

// Run retries the spool until ctx is done, each output when its backoff
// has passed. It returns nil when ctx is cancelled.
func (d *Dispatcher) Run(ctx context.Context) error {
	for {
		_ = d.pass(ctx, true)
		wait := time.Minute
		if next, ok := d.nextDue(); ok {
			wait = min(max(next.Sub(d.env.Now()), 50*time.Millisecond), time.Minute)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-d.wakeCh:
			t.Stop()
		case <-t.C:
		}
	}
}

// Flush makes one pass over the whole spool now, backoff or not (tests, and
// a last try at shutdown). It returns the outputs that still failed.
func (d *Dispatcher) Flush(ctx context.Context) error {
	return d.pass(ctx, false)
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

// pass tries every output with pending batches (only those whose backoff
// has passed when dueOnly), each output's batches oldest first, stopping
// at an output's first failure.
func (d *Dispatcher) pass(ctx context.Context, dueOnly bool) error {
	d.flushMu.Lock()
	defer d.flushMu.Unlock()
	now := d.env.Now()

	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return fmt.Errorf("dispatcher closed")
	}
	byOutput := map[string][]*spoolItem{}
	for _, it := range d.items {
		byOutput[it.Output] = append(byOutput[it.Output], it)
	}
	d.mu.Unlock()

	names := make([]string, 0, len(byOutput))
	for name := range byOutput {
		names = append(names, name)
	}
	sort.Strings(names)
	var errs []error
	for _, name := range names {
		if ctx.Err() != nil {
			errs = append(errs, ctx.Err())
			break
		}
		items := byOutput[name]
		sort.Slice(items, func(i, j int) bool { return items[i].ID < items[j].ID })
		if err := d.retryOutput(ctx, name, items, now, dueOnly); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (d *Dispatcher) retryOutput(ctx context.Context, name string, items []*spoolItem, now time.Time, dueOnly bool) error {
	// Expired batches go first, due or not.
	live := items[:0]
	for _, it := range items {
		if now.Sub(it.Created) > d.opts.MaxAge {
			d.log.Error("notify: batch expired undelivered, dropped", "output", name, "rule", it.Batch.Rule,
				"alarms", len(it.Batch.Alarms), "created", it.Created, "attempts", it.Attempts, "last_error", it.LastError)
			d.drop(it)
			continue
		}
		live = append(live, it)
	}
	if len(live) == 0 {
		return nil
	}
	d.mu.Lock()
	st := d.outputs[name]
	due := st == nil || !now.Before(st.next)
	d.mu.Unlock()
	if dueOnly && !due {
		return nil
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
		return fmt.Errorf("output %s: %w", name, err)
	}
	lock := d.outputLock(name)
	lock.Lock()
	defer lock.Unlock()
	for _, it := range live {
		if !d.stillPending(it.ID) {
			continue
		}
		err := d.attempt(ctx, n, it)
		if err == nil {
			d.drop(it)
			d.log.Info("notify: spooled batch delivered", "output", name, "rule", it.Batch.Rule, "attempts", it.Attempts+1)
			continue
		}
		if IsPermanent(err) {
			d.drop(it)
			d.log.Error("notify: permanent failure, spooled batch dropped", "output", name, "rule", it.Batch.Rule, "err", err)
			continue
		}
		it.Attempts++
		it.LastAttempt, it.LastError = now, textSafe(err.Error())
		if serr := d.spool.write(it); serr != nil {
			d.log.Error("spool: cannot record an attempt", "id", it.ID, "err", serr)
		}
		wait := d.failed(name, now)
		d.log.Warn("notify: retry failed", "output", name, "pending", d.pendingFor(name), "retry_in", wait, "err", err)
		return fmt.Errorf("output %s: %w", name, err)
	}
	d.succeeded(name)
	return nil
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
	n, err := New(name, spec, d.env)
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	d.inline[name] = n
	d.mu.Unlock()
	return n, nil
}
