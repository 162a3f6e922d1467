// Package act takes picket's corrective actions: kill, archive, exec,
// throttle, freeze and sysctl. Each is bounded, journaled before and after,
// dry-runnable, and unable to hit the wrong process: the safety rules are
// stated, and mostly implemented, in safety.go alone.
//
// In the stories of docs/stories.md the cure was done by hand: `kill -9`
// loops built from `ps` output (PIKT's kill_user_proc in the imapd storm),
// `cp -p` of mail spools (archive_mail_file), `iptables -A INPUT -p tcp
// --dport 80 -j DROP` typed into a thrashing box. Here each is a first-class
// action.
package act

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/picket-guard/picket/internal/hostcap"
	"github.com/picket-guard/picket/internal/procid"
	"github.com/picket-guard/picket/internal/snapshot"
)

// Request is one action to take, with the alarm that asked for it.
type Request struct {
	// Spec is rendered: its placeholders were filled from the alarm's row
	// (untrusted values: process and user names).
	Spec             Spec
	Host, Rule, Case string
	Row              map[string]any     // the alarm's row; exec passes it as PICKET_* variables
	Snapshot         *snapshot.Snapshot // what the rule saw: a kill's first selection starts from it
	DryRun           bool               // this rule's dry-run (Options.DryRun is the global one)
	// Rendered says the spec's templates were filled (the rules engine
	// renders every string that held a placeholder in the configuration).
	// A "{{" in a rendered value is then data, a process named "{{x", not
	// a placeholder left over; without it a spec still holding one is
	// refused.
	Rendered bool
}

// Result is what one action did, or would do.
type Result struct {
	ID      string `json:"id"` // journal id; "" for dry runs, which are not journaled
	Type    string `json:"type"`
	DryRun  bool   `json:"dry_run"`
	Targets []any  `json:"targets"` // kill, freeze: pids (ints); archive: paths; throttle: "tcp/80"; sysctl: keys; exec: argv[0]
	Result  string `json:"result"`  // for people: "would send TERM to 100 processes", "killed 100", "refused: ...", "rate-limited"
	Error   string `json:"error,omitempty"`
	// RateLimited is set when a rate limit refused the action (safety rule
	// 6); the caller raises an alarm (Options.OnLimit is called as well).
	RateLimited bool `json:"rate_limited,omitempty"`
}

// Options configure a Runner.
type Options struct {
	// Root is read as "/" for /proc, /proc/sys, /etc/passwd, /etc/group and
	// utmp (default "/"). With another root nothing is signalled or frozen.
	Root string
	// StateDir holds the journal (default DefaultStateDir()). It is not
	// touched when DryRun is set.
	StateDir  string
	Protected Protected
	Limits    Limits
	// NameService names the users /etc/passwd does not list (LDAP, sssd):
	// the collector's, so that a row's user=alice finds alice's uid.
	// Only with the host's own Root.
	NameService *procid.Resolver
	// DryRun makes every action a dry run.
	DryRun bool
	// NetNS is the network namespace file (/run/netns/NAME,
	// /proc/PID/ns/net) throttles act in; "" is picket's own.
	NetNS string
	// Now is the clock (default time.Now).
	Now    func() time.Time
	Logger *slog.Logger
	// Warn is called with the targets of a kill whose spec sets warn:,
	// before the kill waits that long and selects again (the rules engine
	// notifies whoever should hear it).
	Warn func(ctx context.Context, req Request, pids []int)
	// OnLimit is called when a rate limit starts refusing actions, once per
	// trip, so the caller can raise an alarm.
	OnLimit func(rule string, err error)
	// RevertOnRecover makes Recover revert throttles and freezes still in
	// force instead of re-arming them to their end. The daemon sets it: a
	// restarted picket does not know the state that made them, and its
	// rules will throttle again on their first look if the storm is still
	// on (kill -9 the daemon while a throttle is active: the next start
	// reverts it).
	RevertOnRecover bool
	// Host is what this host's kernel and picket's privileges allow (nil:
	// NewRunner probes it). The kill path uses pidfds and archive openat2
	// only where it says so; a kind it refuses is refused at once.
	Host *hostcap.Set
	// Journal sizes the journal's rotation (its Logger is Logger).
	Journal JournalOptions
	// ProtectedPorts are local ports a throttle refuses unless its spec
	// says force: true, besides sshd's 22 (the daemon adds its own HTTP
	// port): a throttle must not lock out the administrator.
	ProtectedPorts []int
}

// DefaultStateDir is /var/lib/picket for root, else $XDG_STATE_HOME/picket
// or ~/.local/state/picket.
func DefaultStateDir() string {
	if os.Geteuid() == 0 {
		return "/var/lib/picket"
	}
	if d := os.Getenv("XDG_STATE_HOME"); filepath.IsAbs(d) {
		return filepath.Join(d, "picket")
	}
	if h, err := os.UserHomeDir(); err == nil {
		return filepath.Join(h, ".local", "state", "picket")
	}
	return filepath.Join(os.TempDir(), "picket-state")
}

// Runner takes actions. It is safe for concurrent use.
type Runner struct {
	opts    Options
	root    string
	live    bool
	procs   procFS
	log     *slog.Logger
	journal *Journal // nil when every action is a dry run
	limits  *limiter
	// protected and protectedUIDs are rule 2's lists, replaced whole by
	// SetProtected under protMu.
	protMu        sync.RWMutex
	protected     Protected
	protectedUIDs map[uint32]bool
	kinds         []kind
	host          *hostcap.Set

	tripMu sync.Mutex
	trips  map[string]*trip // by rule and kind: refusals being counted

	mu       sync.Mutex
	timers   map[string]*time.Timer // timed actions this Runner will end
	wg       sync.WaitGroup         // timers reverting now
	inflight sync.WaitGroup         // Do calls under way
	closed   bool
	nftMu    sync.Mutex
}

// NewRunner checks opts and opens the journal (unless DryRun).
func NewRunner(opts Options) (*Runner, error) {
	if opts.Root == "" {
		opts.Root = "/"
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	root, err := filepath.Abs(opts.Root)
	if err != nil {
		return nil, fmt.Errorf("root %q: %w", opts.Root, err)
	}
	procs, err := newProcFS(root)
	if err != nil {
		return nil, err
	}
	r := &Runner{
		opts: opts, root: root, live: root == "/", procs: procs, log: opts.Logger,
		limits: newLimiter(opts.Limits), protectedUIDs: map[uint32]bool{}, timers: map[string]*time.Timer{}, trips: map[string]*trip{},
		kinds: kinds(), host: opts.Host,
	}
	if r.live && opts.NameService != nil {
		procs.users.Resolve(opts.NameService)
	}
	if r.host == nil {
		// Actions act on this kernel whatever tree Root reads.
		r.host = hostcap.Probe(hostcap.Options{NetNS: opts.NetNS})
	}
	if unknown := r.SetProtected(opts.Protected); len(unknown) > 0 {
		return nil, fmt.Errorf("protected users: no user %s", strings.Join(unknown, ", "))
	}
	if !opts.DryRun {
		if r.opts.StateDir == "" {
			r.opts.StateDir = DefaultStateDir()
		}
		jo := opts.Journal
		if jo.Logger == nil {
			jo.Logger = opts.Logger
		}
		if r.journal, err = openJournal(r.opts.StateDir, jo, &r.kinds); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// SetProtected replaces what rule 2 protects, for the actions taken from
// now on (a configuration reload). A user name this host does not know is
// left out and returned: nothing can run as a user that does not exist, and
// a fleet's one protect: list names users that only some hosts have.
func (r *Runner) SetProtected(p Protected) (unknown []string) {
	uids := map[uint32]bool{}
	for _, u := range p.Users {
		// Once per configuration, so the name service may be asked
		// (a fork): a protected LDAP user must not be left out because
		// none of its processes was named yet.
		uid, err := r.procs.users.Accounts().LookupNow(context.Background(), u)
		if err != nil {
			unknown = append(unknown, strconv.Quote(u))
			continue
		}
		uids[uid] = true
	}
	r.protMu.Lock()
	r.protected, r.protectedUIDs = p, uids
	r.protMu.Unlock()
	return unknown
}

// protection is what rule 2 protects now.
func (r *Runner) protection() (Protected, map[uint32]bool) {
	r.protMu.RLock()
	defer r.protMu.RUnlock()
	return r.protected, r.protectedUIDs
}

// Do takes one action (or, dry, computes what it would do). It never
// panics on a bad request: the Result says what was refused and why.
func (r *Runner) Do(ctx context.Context, req Request) Result {
	o := &op{r: r, req: req, res: Result{DryRun: req.DryRun || r.opts.DryRun, Targets: []any{}}}
	if v := reflect.ValueOf(req.Spec); req.Spec == nil || v.Kind() != reflect.Pointer || v.IsNil() || v.Elem().Kind() != reflect.Struct {
		o.refuse(errors.New("no action (Spec must be one of NewSpec's)"))
		return o.res
	}
	o.res.Type = req.Spec.Kind()
	if err := req.Spec.Validate(); err != nil {
		o.refuse(err)
		return o.res
	}
	if f := unrendered(req.Spec); f != "" && !req.Rendered {
		o.refuse(fmt.Errorf("%s still holds a placeholder: the spec was not rendered", f))
		return o.res
	}
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		o.refuse(errors.New("runner closed"))
		return o.res
	}
	r.inflight.Add(1)
	r.mu.Unlock()
	defer r.inflight.Done()
	k := r.kind(o.res.Type)
	if k == nil {
		o.refuse(fmt.Errorf("unknown action kind %q", o.res.Type))
		return o.res
	}
	// A kind this host cannot run is refused before anything is tried
	// (needs.go); a dry run says what it would do, and that it would not.
	fit := r.fitness(k)
	if fit.Refused != nil && !o.dry() {
		o.refuse(fit.Refused)
		return o.res
	}
	k.do(r, ctx, o, req.Spec)
	if fit.Refused != nil {
		o.res.Result += " (but " + fit.Refused.Error() + ")"
	}
	return o.res
}

// kind is the descriptor of the action kind called name, nil if none is.
func (r *Runner) kind(name string) *kind { return kindNamed(r.kinds, name) }

// Close ends what this Runner still has running: the timed actions it
// armed are reverted now (a clean stop leaves nothing behind; a crash
// leaves them to the next Runner's Recover). Then it closes the journal.
func (r *Runner) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	r.mu.Unlock()
	r.inflight.Wait() // actions under way finish (and arm their timers) first
	r.mu.Lock()
	ids := make([]string, 0, len(r.timers))
	for id, t := range r.timers {
		t.Stop()
		ids = append(ids, id)
	}
	r.timers = map[string]*time.Timer{}
	r.mu.Unlock()
	r.tripMu.Lock()
	trips := r.trips
	r.trips = map[string]*trip{}
	r.tripMu.Unlock()
	r.wg.Wait()
	var errs []error
	for _, t := range trips {
		errs = append(errs, r.closeTrip(t))
	}
	for _, id := range ids {
		if err := r.revertID(context.Background(), id, "ended early: picket stopped"); err != nil {
			errs = append(errs, err)
		}
	}
	if r.journal != nil {
		errs = append(errs, r.journal.Close())
	}
	return errors.Join(errs...)
}

// op is one action under way: its request, its result, its journal id.
type op struct {
	r   *Runner
	req Request
	res Result
	id  string
	// procs are who the targets are, journaled with the intent; doneProcs,
	// when set, who they turned out to be, with the result (a kill's later
	// rounds add processes).
	procs, doneProcs []Target
}

func (o *op) dry() bool { return o.res.DryRun }

// refuse ends the action before anything was done.
func (o *op) refuse(err error) {
	o.res.Result = "refused: " + err.Error()
	o.res.Error = err.Error()
}

// intent commits to a change (safety rules 6 and 7): it takes a rate-limit
// slot and journals the change, with what undoes it, before it is made.
// When it returns false the caller must not act; o.res says why.
func (o *op) intent(targets []any, undo *Undo, until time.Time) bool {
	r := o.r
	o.res.Targets = targets
	now := r.opts.Now()
	if err, first := r.limits.take(o.req.Rule, now); err != nil {
		o.res.Result, o.res.Error, o.res.RateLimited = "rate-limited", err.Error(), true
		o.res.ID = r.refused(o, targets, now)
		if first && r.opts.OnLimit != nil {
			r.opts.OnLimit(o.req.Rule, err)
		}
		return false
	}
	r.endTrip(o.req.Rule, o.res.Type)
	o.id = newID(now)
	e := o.entry(PhaseIntent, now)
	e.Targets, e.Undo, e.Until, e.Procs = targets, undo, until, o.procs
	if b, err := json.Marshal(o.req.Spec); err == nil {
		e.Spec = b
	}
	e.Row = o.req.Row
	if err := r.journal.Append(e); err != nil {
		o.refuse(fmt.Errorf("cannot journal the action, so it is not taken: %w", err))
		o.id = ""
		return false
	}
	o.res.ID = o.id
	return true
}

// finish records the outcome, in the Result and the journal.
func (o *op) finish(result string, err error, output string) {
	o.res.Result = result
	if err != nil {
		o.res.Error = err.Error()
	}
	if o.id == "" {
		return
	}
	e := o.entry(PhaseResult, o.r.opts.Now())
	e.Targets, e.Result, e.Error, e.Output = o.res.Targets, o.res.Result, o.res.Error, output
	if o.doneProcs != nil {
		e.Procs = o.doneProcs
	}
	if jerr := o.r.journal.Append(e); jerr != nil {
		o.r.log.Error("journal", "id", o.id, "err", jerr)
	}
	o.r.log.Info("action", "id", o.id, "type", o.res.Type, "rule", o.req.Rule, "result", result, "err", o.res.Error)
}

func (o *op) entry(phase string, now time.Time) Entry {
	id := o.id
	if id == "" {
		id = o.res.ID
	}
	return Entry{ID: id, Time: now.UTC(), Phase: phase, Type: o.res.Type, Host: o.req.Host, Rule: o.req.Rule, Case: o.req.Case}
}

// newID is a journal id: the time, then random hex so two actions in one
// second differ ("20260428T101500-3f9c2a").
func newID(now time.Time) string {
	return now.UTC().Format("20060102T150405") + "-" + randHex()
}

func randHex() string {
	var b [3]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// unrendered names the first exported string field still holding "{{".
func unrendered(s Spec) string {
	v := reflect.ValueOf(s).Elem()
	for i := 0; i < v.NumField(); i++ {
		f, name := v.Field(i), v.Type().Field(i).Name
		switch f.Kind() {
		case reflect.String:
			if hasPlaceholder(f.String()) {
				return name
			}
		case reflect.Slice:
			if f.Type().Elem().Kind() == reflect.String {
				for j := 0; j < f.Len(); j++ {
					if hasPlaceholder(f.Index(j).String()) {
						return fmt.Sprintf("%s[%d]", name, j)
					}
				}
			}
		}
	}
	return ""
}

func intsAny(ps []proc) []any {
	out := make([]any, len(ps))
	for i, p := range ps {
		out[i] = p.pid
	}
	return out
}

// sleep waits d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
