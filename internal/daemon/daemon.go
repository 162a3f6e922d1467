// Package daemon is `picket run`: it collects on the rules' schedules,
// evaluates them, keeps history, serves metrics and the API, notifies and
// acts — and keeps doing so while the box is dying of what it watches.
// Collection and evaluation never fork or exec; outputs and actions run off
// the collection loop so a hung SMTP server or a slow kill never delays
// the next look.
package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"runtime/debug"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/picket-guard/picket/internal/act"
	"github.com/picket-guard/picket/internal/alarm"
	"github.com/picket-guard/picket/internal/collect"
	"github.com/picket-guard/picket/internal/dashboard"
	"github.com/picket-guard/picket/internal/doctor"
	"github.com/picket-guard/picket/internal/forecast"
	"github.com/picket-guard/picket/internal/history"
	"github.com/picket-guard/picket/internal/hostcap"
	"github.com/picket-guard/picket/internal/notify"
	"github.com/picket-guard/picket/internal/procid"
	"github.com/picket-guard/picket/internal/rules"
	"github.com/picket-guard/picket/internal/secpath"
	"github.com/picket-guard/picket/internal/server"
	"github.com/picket-guard/picket/internal/snapshot"
)

// kickGap is the shortest time between two looks made because the kernel
// said something.
const kickGap = 5 * time.Second

// Options configure the daemon. main fills them from flags.
type Options struct {
	// ConfigPath is the configuration file; "" means the built-in default.
	ConfigPath string
	// LoadConfig loads a configuration (main wires notify's and act's
	// specs into it).
	LoadConfig func(path string) (*rules.Config, string, error)
	Root       string // read as "/" (default "/")
	StateDir   string // history, journal, spool, log
	Listen     string // HTTP listener ("" = 127.0.0.1:9749; "off" = none)
	TokenFile  string
	Host       string // evaluate as this host name (default: the kernel's)
	// Interval is the longest time between two collections, whatever the
	// rules' schedules (metrics and history stay fresh). Default 1m.
	Interval    time.Duration
	OOMScoreAdj *int // nil: -1000; an explicit 0 is 0
	NoProtect   bool
	DryRun      bool
	Stderr      io.Writer
	Version     string
	// ActionTimeout bounds one action (default 2m).
	ActionTimeout time.Duration
	// Features is the host's feature probe (nil: New probes this host
	// once); a test switches features off through it.
	Features *hostcap.Set
	// SpoolMaxItems and SpoolMaxBytes bound the notification spool
	// (defaults 1,000 batches and 32 MiB; see notify.DispatcherOptions).
	SpoolMaxItems int
	SpoolMaxBytes int64
	// NetNS is the network namespace file throttles act in ("" is
	// picket's own; tests give one they made).
	NetNS string
	// Forecast tunes the time-to-exhaustion fit (zero: its defaults,
	// docs/forecast.md).
	Forecast forecast.Options
	// BPFPinDir is where the BPF iterators are pinned and found again
	// (collect.Options.BPFPinDir; "" for nowhere): a restart, and the
	// one-shot commands, then open them instead of loading them.
	BPFPinDir string
}

// Daemon is one running picket.
type Daemon struct {
	opts Options
	log  *slog.Logger
	logf *reopenFile

	col *collect.Collector
	mem *memLimiter // the soft memory limit, scaled to the host
	// collector is how the last full look attributed sockets ("bpf" or
	// "proc" and why): said once in the log, and again when it changes.
	collector string
	runner    *act.Runner
	// nss names the users passwd does not list, for the collector and the
	// runner both (procid.HostResolver); nil for another root.
	nss  *procid.Resolver
	disp *notify.Dispatcher
	hist *history.Store
	// trends is every limit's recent looks, for the forecasts; only the
	// collection loop touches it.
	trends *forecast.Tracker
	seeded bool // trends were given history's past
	// Each full look ends by returning the heap pages it no longer needs
	// and, when locked (protect), the pages of the binary it faulted in
	// (settle).
	locked  bool
	rnd     *rand.Rand
	hostcap *hostcap.Set

	mu        sync.RWMutex
	cfg       *rules.Config
	cfgName   string
	host      string
	engine    *rules.Engine
	notifiers map[string]notify.Notifier
	snap      *snapshot.Snapshot // the latest look, full or light
	full      *snapshot.Snapshot // the latest full look
	report    *doctor.Report
	alarms    map[string]alarm.Alarm
	silenced  map[string]time.Time
	health    server.Health
	// hostReport is the running configuration held against the host.
	hostReport HostReport

	// Actions and notifications have queues and workers of their own: a
	// kill never waits behind a mail. A notification job only spools its
	// batch (the Dispatcher's delivery loops send), so it is quick too.
	actions  chan job
	notes    chan job
	stopping atomic.Bool // queued actions not yet begun are not taken
	wg       sync.WaitGroup

	// rateLimited counts actions a rate limit refused, by rule and kind,
	// since the start: picket_actions_rate_limited_total, so a fleet's
	// Prometheus sees a host whose guard has stopped acting.
	limitMu     sync.Mutex
	rateLimited map[server.RateLimitKey]uint64
	// stopDispatcher cancels the delivery loops and waits for them.
	stopDispatcher func()

	// klog follows /dev/kmsg; kick says it read a message the catalogue
	// knows, so the rules that read the kernel's log run now.
	klog *kernelLog
	kick chan struct{}
}

// job is one piece of work the collection loop hands to the workers: a
// batch to deliver or an action to take. what and rule say what was
// dropped if the queue is full.
type job struct {
	what, rule string
	run        func()
}

// Workers per queue: two actions at once (a kill's grace period does not
// hold up a throttle), one spooler.
const (
	actionWorkers = 2
	noteWorkers   = 1
)

// New prepares a daemon: loads and checks the configuration, opens the
// state (history, journal, spool). Nothing runs until Run.
func New(opts Options) (*Daemon, error) {
	if opts.Root == "" {
		opts.Root = "/"
	}
	if opts.StateDir == "" {
		opts.StateDir = act.DefaultStateDir()
	}
	if opts.Interval == 0 {
		opts.Interval = time.Minute
	}
	if opts.OOMScoreAdj == nil {
		v := -1000
		opts.OOMScoreAdj = &v
	}
	if opts.ActionTimeout == 0 {
		opts.ActionTimeout = 2 * time.Minute
	}
	if opts.Stderr == nil {
		opts.Stderr = os.Stderr
	}
	if err := os.MkdirAll(opts.StateDir, 0o750); err != nil {
		return nil, fmt.Errorf("state dir: %w", err)
	}
	if err := secpath.Dir(opts.StateDir); err != nil {
		return nil, fmt.Errorf("state dir: %w", err)
	}
	logf, err := openReopen(filepath.Join(opts.StateDir, "picket.log"))
	if err != nil {
		return nil, err
	}
	// Each forecast names the history series it was fitted from: the
	// dashboard draws its projection there.
	if opts.Forecast.Series == nil {
		opts.Forecast.Series = history.LimitSeries
	}
	d := &Daemon{opts: opts, logf: logf, alarms: map[string]alarm.Alarm{}, silenced: map[string]time.Time{},
		rateLimited: map[server.RateLimitKey]uint64{},
		actions:     make(chan job, 256), notes: make(chan job, 1024), trends: forecast.NewTracker(opts.Forecast),
		rnd: rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), uint64(os.Getpid())))}
	d.log = slog.New(teeHandler{slog.NewTextHandler(opts.Stderr, nil), slog.NewJSONHandler(logf, nil)})
	// Whatever fails below, what was opened so far is closed: a caller that
	// retries New (or a test) must find the spool lock, the journal and the
	// log file free.
	fail := func(err error) (*Daemon, error) {
		d.closeState()
		return nil, err
	}

	// One probe at start: what this kernel and picket's privileges allow,
	// for recovery, the collector, the actions, the start log and /healthz.
	if d.hostcap = opts.Features; d.hostcap == nil {
		d.hostcap = hostcap.Probe(hostcap.Options{})
	}
	d.nss = procid.HostResolver(opts.Root)
	// Recovery first, needing nothing but the journal: a configuration that
	// no longer loads or a damaged history must not leave a throttle or a
	// freeze of the last run in force.
	if err := d.recover(); err != nil {
		return fail(err)
	}
	cfg, name, err := opts.LoadConfig(opts.ConfigPath)
	if err != nil {
		return fail(err)
	}
	if opts.ConfigPath != "" {
		if err := strictModes(cfg.Files); err != nil {
			return fail(err)
		}
	}
	d.kick = make(chan struct{}, 1)
	d.klog = newKernelLog(opts.Root, opts.StateDir, d.log, func() {
		select {
		case d.kick <- struct{}{}:
		default:
		}
	})
	if d.col, err = collect.New(collect.Options{Root: opts.Root, BPFPinDir: opts.BPFPinDir, KernelLog: d.klog.log, Host: d.hostcap, NameService: d.nss, NoNameService: d.nss == nil}); err != nil {
		return fail(err)
	}
	if d.hist, err = d.openHistory(); err != nil {
		return fail(fmt.Errorf("history: %w", err))
	}
	// The Dispatcher's env builds the inline outputs: it names this host
	// as the rules see it.
	host := opts.Host
	if host == "" {
		host = d.col.Hostname()
	}
	d.disp, err = notify.NewDispatcher(notify.DispatcherOptions{Dir: filepath.Join(opts.StateDir, "spool"), Env: d.notifyEnv(host),
		MaxItems: opts.SpoolMaxItems, MaxBytes: opts.SpoolMaxBytes, AttemptTimeout: 30 * time.Second})
	if err != nil {
		return fail(err)
	}
	if err := d.install(cfg, name); err != nil {
		return fail(err)
	}
	return d, nil
}

// recover opens the runner and settles what the last run left in the
// journal (Runner.Recover): an action interrupted mid-way, a throttle or
// freeze still in force (reverted: the rules decide again), one whose time
// passed while picket was down. A dry-run daemon recovers with a runner of
// its own, then acts through a dry one.
func (d *Daemon) recover() error {
	opts := act.Options{Root: d.opts.Root, StateDir: d.opts.StateDir, Logger: d.log, NetNS: d.opts.NetNS, NameService: d.nss,
		RevertOnRecover: true, ProtectedPorts: listenPort(d.opts.Listen), Host: d.hostcap,
		OnLimit: func(rule string, err error) {
			d.log.Error("actions stopped by their rate limit: acting needs an administrator now", "rule", rule, "err", err)
		},
		Warn: func(ctx context.Context, req act.Request, pids []int) {
			if w, ok := ctx.Value(warnKey{}).(func([]int, time.Duration)); ok && w != nil {
				var grace time.Duration
				if k, ok := req.Spec.(*act.KillSpec); ok {
					grace = k.Warn
				}
				w(pids, grace)
			}
		}}
	start := time.Now() // opening the journal builds its index: part of the cost
	r, err := act.NewRunner(opts)
	if err != nil {
		return err
	}
	if err := r.Recover(context.Background()); err != nil {
		d.log.Error("recovering actions left by the last run", "err", err)
	}
	d.log.Info("journal recovered", "took", time.Since(start).Round(time.Millisecond))
	if !d.opts.DryRun {
		d.runner = r
		return nil
	}
	if err := r.Close(); err != nil {
		d.log.Error("closing the recovering runner", "err", err)
	}
	opts.DryRun = true
	d.runner, err = act.NewRunner(opts)
	return err
}

// listenPort is the port of the HTTP listener, which a throttle must not
// cut off without force: true.
func listenPort(listen string) []int {
	_, p, err := net.SplitHostPort(listen)
	if listen == "" {
		p, err = "9749", nil
	}
	if n, perr := strconv.Atoi(p); err == nil && perr == nil && n > 0 {
		return []int{n}
	}
	return nil
}

// openHistory opens STATE/history.db, first setting it aside when it is
// damaged (bbolt panics on some damaged pages: an Open or a Query that hit
// one would take the daemon down with it). picket then starts with an
// empty history: forecasts and peaks start over, watching does not stop.
func (d *Daemon) openHistory() (*history.Store, error) {
	p := filepath.Join(d.opts.StateDir, "history.db")
	if err := history.Check(p); errors.Is(err, history.ErrCorrupt) {
		aside := p + ".damaged-" + time.Now().UTC().Format("20060102T150405")
		if rerr := os.Rename(p, aside); rerr != nil {
			return nil, errors.Join(err, rerr)
		}
		d.log.Error("history is damaged: moved aside, starting with an empty history", "file", p, "moved_to", aside, "err", err)
	} else if err != nil {
		d.log.Warn("history check", "err", err)
	}
	return history.Open(p, history.Options{})
}

// closeState closes what New opened, the newest first: the dispatcher
// (its spool lock), the runner (its journal), the history store and the
// log file. Run's shutdown does the same once the workers are done.
func (d *Daemon) closeState() error {
	var errs []error
	if d.disp != nil {
		errs = append(errs, d.disp.Close())
	}
	if d.runner != nil {
		errs = append(errs, d.runner.Close())
	}
	if d.hist != nil {
		errs = append(errs, d.hist.Close())
	}
	if d.logf != nil {
		errs = append(errs, d.logf.Close())
	}
	return errors.Join(errs...)
}

// install makes cfg the running configuration.
func (d *Daemon) install(cfg *rules.Config, name string) error {
	host := d.opts.Host
	if host == "" {
		host = d.col.Hostname()
	}
	env := d.notifyEnv(host)
	ns := map[string]notify.Notifier{}
	for n, o := range cfg.Outputs {
		spec, _ := o.Spec.(notify.Spec)
		nt, err := notify.New(n, spec, env)
		if err != nil {
			closeNotifiers(ns)
			return fmt.Errorf("output %s: %w", n, err)
		}
		ns[n] = nt
	}
	// protect: holds for the actions of this configuration: a reload that
	// drops a unit from it lets the next kill reach that unit.
	var prot act.Protected
	if p, ok := cfg.Protect.(*act.Protected); ok && p != nil {
		prot = *p
	}
	if d.runner != nil {
		if unknown := d.runner.SetProtected(prot); len(unknown) > 0 {
			d.log.Warn("protect: users this host does not know are left out", "users", strings.Join(unknown, ", "))
		}
	}
	d.mu.Lock()
	old := d.notifiers
	d.cfg, d.cfgName, d.notifiers, d.host = cfg, name, ns, host
	d.engine = rules.NewEngine(cfg, cfg.Host(host), rules.EngineOptions{})
	d.health.Config = name
	d.hostReport = HostCheck(cfg, d.hostcap)
	d.health.Host, d.health.Refused = hostFeatures(d.hostcap), d.hostReport.Refused
	d.mu.Unlock()
	d.disp.SetOutputs(ns)
	closeNotifiers(old)
	return nil
}

func (d *Daemon) notifyEnv(host string) notify.Env {
	return notify.Env{Hostname: host, Logger: d.log, StateDir: d.opts.StateDir, Stderr: d.opts.Stderr}
}

// closeNotifiers releases what replaced notifiers hold (log files).
func closeNotifiers(ns map[string]notify.Notifier) {
	for _, n := range ns {
		if c, ok := n.(io.Closer); ok {
			c.Close()
		}
	}
}

// Reload re-reads the configuration; a configuration that does not load
// leaves the running one in place, and says why.
func (d *Daemon) Reload() error {
	cfg, name, err := d.opts.LoadConfig(d.opts.ConfigPath)
	if err == nil && d.opts.ConfigPath != "" {
		err = strictModes(cfg.Files)
	}
	if err == nil {
		err = d.install(cfg, name)
	}
	// logrotate's postrotate sends the SIGHUP whether or not the
	// configuration now loads: the logs are reopened either way (else
	// picket writes on into the rotated file, which logrotate compresses
	// or deletes), and before the outcome is logged, so that line lands
	// in the new file.
	d.reopenLogs()
	if err != nil {
		d.log.Error("reload refused: the running configuration stays", "config", d.opts.ConfigPath, "err", err.Error())
		d.mu.Lock()
		d.health.ConfigError = err.Error()
		d.mu.Unlock()
		return err
	}
	d.mu.Lock()
	d.health.ConfigError = ""
	n := len(cfg.Rules)
	rep := d.hostReport
	d.mu.Unlock()
	d.log.Info("configuration reloaded", "config", name, "rules", n)
	for _, r := range rep.Refused {
		d.log.Error("action kind refused on this host", "kind", r.Kind, "rules", strings.Join(r.Rules, ","), "reason", r.Reason)
	}
	return nil
}

// reopenLogs reopens picket.log and the log outputs' files by name. A file
// that cannot be reopened is logged: picket.log keeps the file it had open
// (so the warning reaches it), a log output opens its file again at its
// next alarm.
func (d *Daemon) reopenLogs() {
	if err := d.logf.Reopen(); err != nil {
		d.log.Warn("reopening picket.log: writing on to the file it had open", "err", err)
	}
	if err := d.disp.Reopen(); err != nil {
		d.log.Warn("reopening log outputs", "err", err)
	}
}

// Run watches until ctx is done. Each SIGHUP the caller turns into a value
// on reload. On return, actions in flight are finished (bounded by their
// timeout), the spool and journal are flushed.
func (d *Daemon) Run(ctx context.Context, reload <-chan struct{}) error {
	// The BPF iterator is loaded before the memory is locked, and the
	// garbage of loading it (the kernel's BTF, decoded: ~6 MiB) given
	// back at once, not when the runtime gets to it. What the load found
	// is the bpf_iter feature of /healthz and /metrics.
	if method, why := d.col.Prepare(); method != "" {
		detail := "task_file iterator loaded"
		if method != snapshot.CollectorBPF {
			detail = why
		}
		d.hostcap = d.hostcap.With(hostcap.Feature{Name: hostcap.BPFIter, Found: method == snapshot.CollectorBPF, Probed: true, Detail: detail})
		d.mu.Lock()
		d.health.Host = hostFeatures(d.hostcap)
		d.mu.Unlock()
		debug.FreeOSMemory()
	}
	release := func() {}
	if !d.opts.NoProtect && d.opts.Root == "/" {
		release, d.locked = protect(d.log, *d.opts.OOMScoreAdj, true)
	}
	// A soft heap limit: the GC works harder before picket grows past its
	// budget (≤ 30 MiB RSS on a small host), instead of waiting for GOGC's
	// doubling; it grows with the host's process count (memlimit.go).
	// GOMEMLIMIT in the environment wins.
	d.mem = newMemLimiter()
	defer release()
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	for i := 0; i < actionWorkers; i++ {
		d.wg.Add(1)
		go d.worker(d.actions)
	}
	for i := 0; i < noteWorkers; i++ {
		d.wg.Add(1)
		go d.worker(d.notes)
	}
	dispCtx, stopDisp := context.WithCancel(context.Background())
	dispDone := make(chan struct{})
	go func() { defer close(dispDone); d.disp.Run(dispCtx) }()
	d.stopDispatcher = func() { stopDisp(); <-dispDone }
	d.wg.Add(1)
	go func() { defer d.wg.Done(); d.klog.run(runCtx) }()
	if d.opts.Listen != "off" {
		// Stale after three intervals, and never less than the slowest
		// rule could take to be due again.
		stale := 3 * d.opts.Interval
		if stale < 30*time.Second {
			stale = 30 * time.Second
		}
		srv, err := server.New(server.Options{Listen: d.opts.Listen, TokenFile: d.opts.TokenFile, Source: d, Mutator: d,
			Logger: d.log, Version: d.opts.Version, StaleAfter: stale, History: historySource{d.hist}, Assets: dashboard.Assets()})
		if err != nil {
			stop()
			return errors.Join(err, d.shutdown())
		}
		d.wg.Add(1)
		go func() {
			defer d.wg.Done()
			if err := srv.ListenAndServe(runCtx); err != nil && !errors.Is(err, context.Canceled) {
				d.log.Error("http server", "err", err)
				stop()
			}
		}()
	}
	d.log.Info("picket running", "version", d.opts.Version, "config", d.cfgName, "state", d.opts.StateDir, "listen", d.opts.Listen)
	d.mu.RLock()
	rep := d.hostReport
	d.mu.RUnlock()
	d.logHost(rep)

	next := map[string]time.Time{}
	lastCollect := time.Time{}
	compactAt := time.Now().Add(time.Hour)
	// A message the catalogue knows makes the rules that read the
	// kernel's log (and doctor's findings, which show it) due at once, at
	// most every kickGap: a kernel repeating itself costs one look per gap.
	kicked, lastKick := false, time.Time{}
	for {
		now := time.Now()
		d.mu.RLock()
		rs := d.engine.Rules()
		d.mu.RUnlock()
		var due []*rules.Rule
		wake := now.Add(d.opts.Interval)
		if !lastCollect.IsZero() && lastCollect.Add(d.opts.Interval).Before(wake) {
			wake = lastCollect.Add(d.opts.Interval)
		}
		kickNow := kicked && now.Sub(lastKick) >= kickGap
		if kickNow {
			kicked, lastKick = false, now
		} else if kicked && lastKick.Add(kickGap).Before(wake) {
			wake = lastKick.Add(kickGap)
		}
		for _, r := range rs {
			t, ok := next[r.Name]
			if !ok || !t.After(now) || kickNow && (r.NeedsKernelLog() || r.NeedsFindings()) {
				due = append(due, r)
				next[r.Name] = rules.NextRun(r, now, d.rnd)
				t = next[r.Name]
			}
			if t.Before(wake) {
				wake = t
			}
		}
		if len(due) > 0 || lastCollect.IsZero() || now.Sub(lastCollect) >= d.opts.Interval {
			d.cycle(runCtx, due)
			lastCollect = now
		}
		if now.After(compactAt) {
			if err := d.hist.Compact(now); err != nil {
				d.log.Warn("history compaction", "err", err)
			}
			compactAt = now.Add(time.Hour)
		}
		timer := time.NewTimer(time.Until(wake))
		select {
		case <-runCtx.Done():
			timer.Stop()
			return d.shutdown()
		case <-reload:
			timer.Stop()
			if d.Reload() == nil {
				next = map[string]time.Time{} // new rules: all due now
			}
		case <-d.kick:
			timer.Stop()
			kicked = true
		case <-timer.C:
		}
	}
}

// shutdown stops in bounded time: actions under way finish (each within
// ActionTimeout), actions queued but not begun are not taken (the rules
// decide again at the next start), queued notifications are written to
// the spool, and deliveries under way are cancelled, their batches left in
// the spool for the next start. A hung mail server does not hold it up.
func (d *Daemon) shutdown() error {
	d.log.Info("stopping: finishing actions in flight; undelivered notifications stay in the spool")
	d.stopping.Store(true)
	close(d.actions)
	close(d.notes)
	d.wg.Wait()
	d.klog.save()
	if d.stopDispatcher != nil {
		d.stopDispatcher()
	}
	d.mu.RLock()
	closeNotifiers(d.notifiers)
	d.mu.RUnlock()
	d.log.Info("stopped", "spooled", d.disp.Pending())
	if err := d.col.Close(); err != nil {
		d.log.Warn("collector", "err", err)
	}
	return d.closeState()
}

// cycle is one look: collect, diagnose, record, evaluate the due rules and
// hand what they decided to the workers.
func (d *Daemon) cycle(ctx context.Context, due []*rules.Rule) {
	start := time.Now()
	d.mu.RLock()
	lastFull, eng, report := d.full, d.engine, d.report
	d.mu.RUnlock()
	// A full look (every fd, the socket tables) when a due rule reads
	// sockets or doctor's findings, or the last one is older than the
	// interval; else a light one (processes and kernel counters only): a
	// fork-storm guard every second must not pay socket attribution.
	full := lastFull == nil || start.Sub(lastFull.Time) >= d.opts.Interval
	for _, r := range due {
		full = full || r.NeedsSockets() || r.NeedsFindings()
	}
	depth := collect.Light
	if full {
		depth = collect.Full
	}
	snap, err := d.col.Collect(ctx, depth)
	if snap == nil {
		d.log.Error("collection failed", "err", err)
		d.mu.Lock()
		d.health.LastError = fmt.Sprint(err)
		d.mu.Unlock()
		return
	}
	if key := snap.Collector + snap.CollectorReason + "\x00" + snap.ProcessCollector + snap.ProcessCollectorReason + "\x00" + snap.BPFPrograms; full && snap.Collector != "" && key != d.collector {
		d.collector = key
		if snap.Collector == snapshot.CollectorBPF {
			d.log.Info("sockets are attributed by a BPF iterator", "programs", snap.BPFPrograms)
		} else {
			d.log.Warn("sockets are attributed by the /proc walk (one readlink per fd)", "reason", snap.CollectorReason)
		}
		if snap.ProcessCollector == snapshot.CollectorBPF {
			d.log.Info("processes are read by a BPF task iterator")
		} else if snap.ProcessCollector != "" {
			d.log.Info("processes are read from /proc/PID/stat, status and cgroup", "reason", snap.ProcessCollectorReason)
		}
	}
	d.mem.update(snap.Processes.Total, snap.Memory.MemTotalBytes)
	if full {
		if !d.seeded {
			// After a restart the trends pick up where history left
			// them, not ten minutes later.
			d.trends.Seed(snap, func(l forecast.Limit) []forecast.Sample { return d.hist.LimitSamples(l, snap.Time) })
			d.seeded = true
		}
		snap.Forecasts = d.trends.Update(snap)
		in := doctor.Input{Cur: snap, Prev: lastFull, History: doctorHistory{d.hist}}
		if lastFull != nil {
			in.Interval = snap.Time.Sub(lastFull.Time)
		}
		r := doctor.Run(in, doctor.Checks())
		report = &r
		if err := d.hist.Record(snap); err != nil {
			d.log.Warn("history", "err", err)
		}
	} else {
		// The API, /metrics and the dashboard keep showing the sockets of
		// the last full look; Light tells them so.
		snap.Sockets = lastFull.Sockets
		snap.Forecasts = lastFull.Forecasts
	}
	var events []rules.Event
	if len(due) > 0 {
		rin := &rules.Input{Snapshot: snap}
		if report != nil {
			for _, f := range report.Findings {
				rin.Findings = append(rin.Findings, rules.Finding{ID: f.ID, Severity: f.Severity.String(), Title: f.Title})
			}
		}
		var eerr error
		events, eerr = eng.Evaluate(rin, due)
		if eerr != nil {
			d.log.Error("rule evaluation", "err", eerr)
		}
	}
	d.mu.Lock()
	d.snap, d.report = snap, report
	if full {
		d.full = snap
	}
	d.health.LastCollection = snap.Time
	d.health.LastDuration = time.Since(start)
	d.health.LastError = ""
	if err != nil {
		d.health.LastError = err.Error()
	}
	d.mu.Unlock()
	d.dispatch(snap, events)
	if full {
		settle(d.log, d.locked, roomy(snap.Memory))
	}
}

// dispatch records alarms and queues outputs (one batch per rule and
// output: every row of the evaluation in one mail) and actions.
func (d *Daemon) dispatch(snap *snapshot.Snapshot, events []rules.Event) {
	type bk struct{ rule, out string }
	batches := map[bk]*alarm.Batch{}
	refs := map[bk]rules.OutputRef{}
	var order []bk
	d.mu.Lock()
	for _, ev := range events {
		a := ev.Alarm
		if a.Status == alarm.Resolved {
			delete(d.alarms, a.ID())
		} else {
			d.alarms[a.ID()] = a
		}
		for _, e := range ev.Errors {
			d.log.Warn("rule item", "rule", a.Rule, "case", a.Case, "err", e)
		}
		if ev.Notify {
			d.log.Info("alarm", "status", a.Status, "level", a.Level.String(), "rule", a.Rule, "case", a.Case, "key", a.Key, "message", a.Message)
		}
		if until, ok := d.silenced[a.Rule]; ok && time.Now().Before(until) {
			ev.Outputs = nil
		}
		for _, o := range ev.Outputs {
			k := bk{a.Rule, o.Name}
			b, ok := batches[k]
			if !ok {
				b = &alarm.Batch{Host: a.Host, Rule: a.Rule, Level: a.Level}
				batches[k] = b
				refs[k] = o
				order = append(order, k)
			}
			b.Alarms = append(b.Alarms, a)
		}
	}
	ruleDry := map[string]bool{}
	for _, r := range d.cfg.Rules {
		ruleDry[r.Name] = r.DryRun
	}
	notifiers := d.notifiers
	d.mu.Unlock()
	// Actions first: their queue is their own, but a kill decided in this
	// look should not even wait for the spooling of its rule's mail.
	for _, ev := range events {
		var tell []rules.OutputRef
		if until, ok := d.silenced[ev.Alarm.Rule]; !ok || !time.Now().Before(until) {
			tell = ev.CaseOutputs
		}
		for _, a := range ev.Actions {
			spec, _ := a.Spec.(act.Spec)
			req := act.Request{Spec: spec, Host: ev.Alarm.Host, Rule: ev.Alarm.Rule, Case: ev.Alarm.Case,
				Row: ev.Alarm.Row, Snapshot: snap, DryRun: d.opts.DryRun || ruleDry[ev.Alarm.Rule], Rendered: true}
			al := ev.Alarm
			warn := func(pids []int, grace time.Duration) { d.warnKill(al, tell, notifiers, pids, grace) }
			d.enqueue(d.actions, job{what: "action", rule: req.Rule, run: func() { d.takeAction(req, warn) }})
		}
	}
	for _, k := range order {
		n := d.notifier(refs[k], notifiers)
		if n == nil {
			continue
		}
		b := *batches[k]
		d.enqueue(d.notes, job{what: "output " + k.out, rule: k.rule, run: func() { d.deliver(n, b) }})
	}
}

// notifier is the output ref names: a configured one, or an inline output
// (`then: [{log: {...}}]`), built once per spec and kept until the next
// reload (the spool keeps its spec to retry it). nil when it cannot be
// built, which is logged.
func (d *Daemon) notifier(ref rules.OutputRef, notifiers map[string]notify.Notifier) notify.Notifier {
	if n, ok := notifiers[ref.Name]; ok {
		return n
	}
	spec, _ := ref.Spec.(notify.Spec)
	n, err := d.disp.Inline(ref.Name, spec)
	if err != nil {
		d.log.Error("inline output", "output", ref.Name, "err", err)
		return nil
	}
	return n
}

// warnKill is a kill's warn: the rule's outputs hear which processes will
// be killed and when, before the kill waits its grace (as an operator
// would say "imapd of nobody goes in 30 s" before doing it). It queues
// the warning and returns at once: the kill's clock is not the outputs'.
func (d *Daemon) warnKill(a alarm.Alarm, outs []rules.OutputRef, notifiers map[string]notify.Notifier, pids []int, grace time.Duration) {
	a.Level = alarm.Warning
	a.Message = fmt.Sprintf("picket kills %d processes in %v unless they exit first (%s): %s", len(pids), grace, pidsText(pids), a.Message)
	d.log.Warn("kill warning", "rule", a.Rule, "case", a.Case, "processes", len(pids), "in", grace, "outputs", len(outs))
	for _, o := range outs {
		n := d.notifier(o, notifiers)
		if n == nil {
			continue
		}
		b := alarm.Batch{Host: a.Host, Rule: a.Rule, Level: a.Level, Alarms: []alarm.Alarm{a}}
		d.enqueue(d.notes, job{what: "kill warning " + o.Name, rule: a.Rule, run: func() { d.deliver(n, b) }})
	}
}

// pidsText lists at most ten pids: "pid 12, 13 and 40 more".
func pidsText(pids []int) string {
	var b strings.Builder
	b.WriteString("pid ")
	for i, p := range pids {
		if i == 10 {
			fmt.Fprintf(&b, " and %d more", len(pids)-10)
			break
		}
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(strconv.Itoa(p))
	}
	return b.String()
}

// enqueue never blocks the collection loop: a full queue drops the job,
// loudly (outputs are still spooled by the Dispatcher once queued).
func (d *Daemon) enqueue(q chan<- job, j job) {
	select {
	case q <- j:
	default:
		d.log.Error("work queue full: dropped", "job", j.what, "rule", j.rule)
	}
}

// worker runs q's jobs until q is closed.
func (d *Daemon) worker(q <-chan job) {
	defer d.wg.Done()
	for j := range q {
		j.run()
	}
}

// deliver hands b to the Dispatcher, which spools it for n's delivery
// loop (a log output it writes at once).
func (d *Daemon) deliver(n notify.Notifier, b alarm.Batch) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := d.disp.Send(ctx, n, b); errors.Is(err, notify.ErrSpooled) {
		d.log.Warn("output failed, spooled for retry", "output", n.Name(), "rule", b.Rule, "err", err)
	} else if err != nil {
		d.log.Error("output failed, batch lost", "output", n.Name(), "rule", b.Rule, "err", err)
	}
}

// warnKey carries, in an action's context, how its kill warns the rule's
// outputs (warnKill bound to the alarm that asked for it).
type warnKey struct{}

// takeAction runs req, bounded by the action timeout; once picket is
// stopping, an action that has not begun is not taken.
func (d *Daemon) takeAction(req act.Request, warn func(pids []int, grace time.Duration)) {
	if d.stopping.Load() {
		d.log.Warn("action not taken: picket is stopping (its rule decides again at the next start)", "rule", req.Rule, "case", req.Case)
		return
	}
	ctx, cancel := context.WithTimeout(context.WithValue(context.Background(), warnKey{}, warn), d.opts.ActionTimeout)
	defer cancel()
	res := d.runner.Do(ctx, req)
	if res.RateLimited {
		d.limitMu.Lock()
		d.rateLimited[server.RateLimitKey{Rule: req.Rule, Kind: res.Type}]++
		d.limitMu.Unlock()
	}
	d.log.Info("action", "rule", req.Rule, "case", req.Case, "type", res.Type, "dry_run", res.DryRun,
		"result", res.Result, "error", res.Error, "targets", len(res.Targets))
}

// Server Source.

// Snapshot is the latest look, with the kernel's log as the follower
// has it now: a message read since the look shows at once.
func (d *Daemon) Snapshot() *snapshot.Snapshot {
	d.mu.RLock()
	s := d.snap
	d.mu.RUnlock()
	if s == nil {
		return nil
	}
	c := *s
	c.KernelLog = d.klog.log.Summary(time.Now())
	return &c
}

func (d *Daemon) Findings() *doctor.Report {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return d.report
}

func (d *Daemon) Alarms() []alarm.Alarm {
	d.mu.RLock()
	defer d.mu.RUnlock()
	out := make([]alarm.Alarm, 0, len(d.alarms))
	for _, a := range d.alarms {
		out = append(out, a)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Level != out[j].Level {
			return out[i].Level < out[j].Level
		}
		return out[i].ID() < out[j].ID()
	})
	return out
}

// Journal reads the journal's last limit entries backwards from its end:
// the cost is the entries asked for, not the file.
func (d *Daemon) Journal(limit int) (json.RawMessage, error) {
	entries, err := act.ReadTail(d.opts.StateDir, limit)
	if err != nil && len(entries) == 0 {
		return nil, err
	}
	if err != nil {
		// Lines that are not entries: the others still stand.
		d.log.Warn("journal", "err", err)
	}
	return json.Marshal(entries)
}

func (d *Daemon) Health() server.Health {
	d.mu.RLock()
	h := d.health
	d.mu.RUnlock()
	st := d.disp.Stats()
	h.SpoolPending, h.SpoolBytes, h.SpoolDropped = st.Pending, st.Bytes, st.Dropped
	d.limitMu.Lock()
	h.RateLimited = maps.Clone(d.rateLimited)
	d.limitMu.Unlock()
	return h
}

// Mutator.

func (d *Daemon) Undo(ctx context.Context, id string) (json.RawMessage, error) {
	res, err := d.runner.Undo(ctx, id)
	if err != nil {
		if strings.HasPrefix(err.Error(), "no action ") {
			return nil, fmt.Errorf("%w: %v", server.ErrNotFound, err)
		}
		b, _ := json.Marshal(res)
		return b, err
	}
	return json.Marshal(res)
}

func (d *Daemon) Silence(_ context.Context, rule string, dur time.Duration) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	known := false
	for _, r := range d.cfg.Rules {
		known = known || r.Name == rule
	}
	if !known {
		return fmt.Errorf("%w: no rule %q in %s", server.ErrNotFound, rule, d.cfgName)
	}
	d.silenced[rule] = time.Now().Add(dur)
	d.log.Info("rule silenced", "rule", rule, "for", dur.String())
	return nil
}

// historySource adapts the history store to the server's HistorySource.
type historySource struct{ s *history.Store }

func (h historySource) Query(series string, since, until time.Time, step time.Duration) ([]server.Point, error) {
	pts, err := h.s.Query(series, since, until, step)
	if errors.Is(err, history.ErrNoSeries) {
		return nil, fmt.Errorf("%w: %v", server.ErrNotFound, err)
	}
	if err != nil {
		return nil, err
	}
	out := make([]server.Point, len(pts))
	for i, p := range pts {
		out[i] = server.Point{Time: p.Time, Value: p.Value, Min: p.Min, Max: p.Max}
	}
	return out, nil
}

func (h historySource) Series(prefix string) ([]string, error) { return h.s.Series(prefix) }

// doctorHistory gives doctor the store's answers: the orphan peak (for
// recommended_tcp_max_orphans) and holders' socket growth (socket-leak).
type doctorHistory struct{ s *history.Store }

func (h doctorHistory) PeakOrphans(since time.Time) (int, bool) { return h.s.PeakOrphans(since) }

func (h doctorHistory) SocketGrowth(pid int, start time.Time, comm string, window time.Duration) (float64, bool, bool) {
	slope, rising, ok := h.s.Growth(history.HolderSeries(pid, start, comm, "total"), window)
	return slope * 3600, rising, ok
}
