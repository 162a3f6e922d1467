package act

import (
	"encoding/json"
	"sort"
	"time"
)

// States of an Action.
const (
	StateInFlight = "in-flight" // intent without result: running now, or picket stopped mid-action
	StateDone     = "done"      // finished; nothing to revert
	StateFailed   = "failed"
	StateActive   = "active"   // a throttle or freeze still running, or a sysctl that can be undone
	StateExpired  = "expired"  // its time is up but nobody reverted it yet (picket was not running): Recover will
	StateReverted = "reverted" // undone, or ended by itself
	StateRefused  = "refused"  // rate-limited
)

// Action is the journal's entries for one id folded together.
type Action struct {
	ID    string    `json:"id"`
	Time  time.Time `json:"time"`
	Type  string    `json:"type"`
	Host  string    `json:"host,omitempty"`
	Rule  string    `json:"rule,omitempty"`
	Case  string    `json:"case,omitempty"`
	State string    `json:"state"`
	// Spec is the rendered spec the intent journaled: a kill's selectors.
	Spec    json.RawMessage `json:"spec,omitempty"`
	Targets []any           `json:"targets,omitempty"`
	// Procs are who the targets were (kill, freeze).
	Procs    []Target  `json:"procs,omitempty"`
	Result   string    `json:"result,omitempty"`
	Error    string    `json:"error,omitempty"`
	Output   string    `json:"output,omitempty"`
	Until    time.Time `json:"until,omitzero"`
	Reverted time.Time `json:"reverted,omitzero"`
	// RevertResult says how it was reverted ("ended after 10m", "undone").
	RevertResult string `json:"revert_result,omitempty"`
	Undo         *Undo  `json:"undo,omitempty"`
	// Refused: how many refusals this entry sums up, the last at Last.
	Count int       `json:"count,omitempty"`
	Last  time.Time `json:"last,omitzero"`
}

// Actions folds entries into one Action per id, oldest first. Whether an
// action is active (until reverted) or expired comes from its kind: see
// kind.revert and kind.timed.
func Actions(entries []Entry, now time.Time) []Action { return foldActions(entries, now, kinds()) }

func foldActions(entries []Entry, now time.Time, ks []kind) []Action {
	idx := map[string]int{}
	var out []Action
	for _, e := range entries {
		i, ok := idx[e.ID]
		if !ok {
			i = len(out)
			idx[e.ID] = i
			out = append(out, Action{ID: e.ID, Time: e.Time, Type: e.Type, Host: e.Host, Rule: e.Rule, Case: e.Case})
		}
		applyEntry(&out[i], e)
	}
	for i := range out {
		settleState(&out[i], now, kindNamed(ks, out[i].Type))
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Time.Before(out[j].Time) })
	return out
}

// applyEntry folds one entry into its action; settleState then decides the
// state.
func applyEntry(a *Action, e Entry) {
	switch e.Phase {
	case PhaseIntent:
		a.Targets, a.Undo, a.Until = e.Targets, e.Undo, e.Until
		if e.Spec != nil {
			a.Spec = e.Spec
		}
		if e.Procs != nil {
			a.Procs = e.Procs
		}
		a.State = StateInFlight
	case PhaseResult:
		a.Result, a.Error, a.Output = e.Result, e.Error, e.Output
		if e.Targets != nil {
			a.Targets = e.Targets
		}
		if e.Procs != nil {
			a.Procs = e.Procs
		}
		a.State = StateDone
	case PhaseRevert:
		a.Reverted, a.RevertResult = e.Time, e.Result
		if e.Error != "" {
			a.RevertResult += " (" + e.Error + ")"
		}
	case PhaseRefused:
		if a.State != StateRefused || e.Count >= a.Count {
			a.Result, a.Error = e.Result, e.Error
		}
		if e.Targets != nil && a.Targets == nil {
			a.Targets = e.Targets
		}
		a.State = StateRefused
		a.Count = max(a.Count, e.Count, 1)
		a.Last = maxTime(a.Last, maxTime(e.Last, e.Time))
	}
}

// maxTime is the later of a and b.
func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// settleState decides a's state from what applyEntry folded, as of now; k is
// its kind (nil for one this picket does not know).
func settleState(a *Action, now time.Time, k *kind) {
	switch {
	case a.State == StateRefused:
	case !a.Reverted.IsZero():
		a.State = StateReverted
	case a.State == StateInFlight:
	case a.Error != "":
		// An undoable action that fails takes back what it did at once.
		a.State = StateFailed
	case k != nil && k.revert != nil && a.Undo != nil:
		a.State = StateActive
		if !a.Until.IsZero() && !now.Before(a.Until) {
			a.State = StateExpired
		}
	}
}

// settled reports whether nothing can change a's state any more but the
// clock: it is refused, failed, reverted, or done and not undoable. The
// journal's index follows the others. A kind this picket does not know
// (a newer one's) is followed while it has an Undo: it may be undoable.
func settled(a Action, k *kind) bool {
	switch {
	case a.State == StateRefused, !a.Reverted.IsZero():
		return true
	case a.State == StateInFlight:
		return false
	case a.Error != "", a.Undo == nil:
		return true
	}
	return k != nil && k.revert == nil
}
