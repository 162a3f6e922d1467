package act

import "time"

// Refusals are counted, not written one by one. A rule due every second
// whose actions are rate-limited would otherwise write a line per look
// (86,400 a day) until the window frees: the journal would grow without
// bound and bury the actions that were taken. A run of refusals of one
// rule and kind (a trip) is journaled as one action: an entry when it
// starts, an updated count at most every refusalEvery while it lasts, and
// the final count when the rule acts again or picket stops.
const refusalEvery = 10 * time.Minute

// trip is one run of refusals under way.
type trip struct {
	base           Entry // the first refusal's entry
	count, written int
	last, wrote    time.Time
}

func tripKey(rule, kind string) string { return rule + "\x00" + kind }

// refused counts a refusal of o and returns the id of its trip. Called
// with the rate limit already refusing.
func (r *Runner) refused(o *op, targets []any, now time.Time) string {
	r.tripMu.Lock()
	defer r.tripMu.Unlock()
	k := tripKey(o.req.Rule, o.res.Type)
	t := r.trips[k]
	if t == nil {
		o.id = newID(now)
		e := o.entry(PhaseRefused, now)
		o.id = ""
		e.Targets, e.Result, e.Error, e.Count, e.Last = targets, o.res.Result, o.res.Error, 1, now.UTC()
		t = &trip{base: e, count: 1, last: now}
		r.trips[k] = t
		r.log.Warn("action rate-limited: further refusals of this rule are counted, not logged one by one",
			"rule", o.req.Rule, "type", o.res.Type, "id", e.ID, "err", o.res.Error)
		if err := r.journal.Append(e); err != nil {
			r.log.Error("journal", "err", err)
		}
		t.written, t.wrote = 1, now
		return e.ID
	}
	t.count++
	t.last = now
	t.base.Error = o.res.Error // the latest "acting again after"
	if now.Sub(t.wrote) >= refusalEvery {
		r.writeTrip(t, now)
	}
	return t.base.ID
}

// endTrip closes the trip of rule and kind, if one is under way: the rule
// acts again.
func (r *Runner) endTrip(rule, kind string) {
	r.tripMu.Lock()
	k := tripKey(rule, kind)
	t := r.trips[k]
	delete(r.trips, k)
	r.tripMu.Unlock()
	if t != nil {
		r.closeTrip(t)
	}
}

// closeTrip journals a trip's final count, if the last entry does not
// hold it.
func (r *Runner) closeTrip(t *trip) error {
	if t.count == t.written {
		return nil
	}
	return r.writeTrip(t, t.last)
}

func (r *Runner) writeTrip(t *trip, now time.Time) error {
	e := t.base
	e.Time, e.Targets, e.Count, e.Last = now.UTC(), nil, t.count, t.last.UTC()
	t.written, t.wrote = t.count, now
	err := r.journal.Append(e)
	if err != nil {
		r.log.Error("journal", "err", err)
	}
	return err
}
