package act

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"
)

// Undo reverts action id, of a kind that has a revert (a throttle, freeze
// or sysctl), and journals it. Kills, archives and execs cannot be undone.
func (r *Runner) Undo(ctx context.Context, id string) (Result, error) {
	if r.journal == nil {
		return Result{ID: id}, errors.New("undo: the runner is in dry-run mode")
	}
	a, err := r.action(id)
	if err != nil {
		return Result{ID: id}, err
	}
	res := Result{ID: id, Type: a.Type, Targets: a.Targets}
	switch k := r.kind(a.Type); {
	case k == nil || k.revert == nil:
		err = fmt.Errorf("undo %s: a %s cannot be undone", id, a.Type)
	case a.State == StateReverted:
		err = fmt.Errorf("undo %s: already reverted at %s (%s)", id, a.Reverted.Local().Format(time.DateTime), a.RevertResult)
	case a.State == StateFailed || a.State == StateRefused || a.Undo == nil:
		err = fmt.Errorf("undo %s: it %s; nothing to revert", id, a.State)
	}
	if err != nil {
		res.Result, res.Error = "refused: "+err.Error(), err.Error()
		return res, err
	}
	r.disarm(id)
	res.Result, err = r.revert(a, "undone")
	if err != nil {
		res.Error = err.Error()
	}
	return res, err
}

// Recover runs once at start, before any action. It settles what the
// journal shows unfinished: an action interrupted mid-way is reverted (when
// its kind has a revert) or closed with an "interrupted" result (and an
// archive's temporary file removed); a timed action whose time is up is
// reverted, one still running is re-armed to end at its time (or, with
// RevertOnRecover, reverted); and each kind's sweep removes what it left on
// the host that no action in force accounts for (a rule in picket's
// nftables table that no active throttle accounts for).
func (r *Runner) Recover(ctx context.Context) error {
	if r.journal == nil {
		return nil
	}
	now := r.opts.Now()
	open, jerr := r.journal.Open(now)
	var errs []error
	if jerr != nil {
		errs = append(errs, jerr)
	}
	inForce := map[string][]Action{} // by kind: the timed actions re-armed to their end
	for _, a := range open {
		if err := ctx.Err(); err != nil {
			return err
		}
		k := r.kind(a.Type) // nil: a kind this picket does not know
		undoable, timed := k != nil && k.revert != nil, k != nil && k.timed
		switch {
		case a.State == StateInFlight && undoable && a.Undo != nil:
			_, err := r.revert(a, "interrupted: picket stopped mid-action; reverted at restart")
			errs = append(errs, err)
		case a.State == StateInFlight:
			msg := "interrupted: picket stopped before the result was written"
			if a.Undo != nil && a.Undo.Temp != "" {
				if err := os.Remove(a.Undo.Temp); err == nil {
					msg += "; removed " + a.Undo.Temp
				}
			}
			e := Entry{ID: a.ID, Time: now.UTC(), Phase: PhaseResult, Type: a.Type, Host: a.Host, Rule: a.Rule, Case: a.Case, Result: msg, Error: "interrupted"}
			errs = append(errs, r.journal.Append(e))
		case a.State == StateExpired:
			_, err := r.revert(a, "ended while picket was not running; reverted at restart")
			errs = append(errs, err)
		case a.State == StateActive && r.opts.RevertOnRecover && timed:
			_, err := r.revert(a, "still in force when picket restarted; reverted (its rule decides again)")
			errs = append(errs, err)
		case a.State == StateActive && !a.Until.IsZero():
			inForce[a.Type] = append(inForce[a.Type], a)
			r.arm(a.ID, r.capUntil(a, now))
		}
	}
	for _, k := range r.kinds {
		if k.sweep != nil {
			errs = append(errs, k.sweep(r, inForce[k.name]))
		}
	}
	return errors.Join(errs...)
}

// capUntil is when a timed action re-armed at recovery ends: its journaled
// end, but no later than its whole duration from now. A clock stepped back
// since it began (a bad RTC at boot, then NTP) would otherwise stretch a
// ten-minute throttle by however far the clock jumped.
func (r *Runner) capUntil(a Action, now time.Time) time.Time {
	d := a.Until.Sub(a.Time)
	if d > 0 && a.Until.After(now.Add(d)) {
		r.log.Warn("the clock went back since this action began: it ends after its duration from now, not at its journaled end",
			"id", a.ID, "type", a.Type, "began", a.Time, "until", a.Until, "now", now)
		return now.Add(d)
	}
	return a.Until
}

// action finds id in the journal.
func (r *Runner) action(id string) (Action, error) {
	a, ok, err := r.journal.Find(id, r.opts.Now())
	if ok {
		return a, nil
	}
	if err != nil {
		return Action{}, err
	}
	return Action{}, fmt.Errorf("no action %q in the journal %s", id, r.opts.StateDir)
}

// revert takes back an action of a kind that has a revert, and journals it.
func (r *Runner) revert(a Action, why string) (string, error) {
	k := r.kind(a.Type)
	if k == nil || k.revert == nil {
		return "", fmt.Errorf("a %s cannot be reverted", a.Type)
	}
	msg, err := k.revert(r, a)
	msg = why + ": " + msg
	e := Entry{ID: a.ID, Time: r.opts.Now().UTC(), Phase: PhaseRevert, Type: a.Type, Host: a.Host, Rule: a.Rule, Case: a.Case, Result: msg}
	if err != nil {
		e.Error = err.Error()
	}
	if jerr := r.journal.Append(e); jerr != nil {
		err = errors.Join(err, jerr)
	}
	r.log.Info("reverted", "id", a.ID, "type", a.Type, "result", msg, "err", err)
	return msg, err
}

// arm makes this Runner end action id at until.
func (r *Runner) arm(id string, until time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	// Even while Close runs: it waits for the actions under way, then ends
	// every timer they armed.
	d := until.Sub(r.opts.Now())
	r.timers[id] = time.AfterFunc(max(d, 0), func() {
		r.mu.Lock()
		_, mine := r.timers[id]
		delete(r.timers, id)
		if mine {
			r.wg.Add(1)
		}
		r.mu.Unlock()
		if !mine {
			return // Close or Undo took it
		}
		defer r.wg.Done()
		if err := r.revertID(context.Background(), id, "ended"); err != nil {
			r.log.Error("revert at end of duration", "id", id, "err", err)
		}
	})
}

// Wait blocks until every timed action this Runner armed has ended by
// itself, or ctx is done. A one-shot caller (picket check) that wants its
// actions to last their time calls it before Close, which would end them.
func (r *Runner) Wait(ctx context.Context) error {
	for {
		r.mu.Lock()
		n := len(r.timers)
		r.mu.Unlock()
		if n == 0 {
			r.wg.Wait() // a revert under way
			return nil
		}
		if err := sleep(ctx, 100*time.Millisecond); err != nil {
			return err
		}
	}
}

func (r *Runner) disarm(id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if t, ok := r.timers[id]; ok {
		t.Stop()
		delete(r.timers, id)
	}
}

// revertID reverts id unless someone (picket undo) did already.
func (r *Runner) revertID(ctx context.Context, id, why string) error {
	a, err := r.action(id)
	if err != nil {
		return err
	}
	if a.State != StateActive && a.State != StateExpired {
		return nil
	}
	if !a.Until.IsZero() && why == "ended" {
		why = fmt.Sprintf("ended after %v", a.Until.Sub(a.Time).Round(time.Second))
	}
	_, err = r.revert(a, why)
	return err
}
