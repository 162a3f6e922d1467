package act

import (
	"context"
	"fmt"

	"github.com/picket-guard/picket/internal/hostcap"
)

// kind is everything picket knows about one action kind. The Runner, undo,
// recovery, the journal's states and `picket check` read these fields, and
// never compare a kind's name: a new kind is one file (its spec, its do, its
// revert) and one line in kinds.
type kind struct {
	// name is the key in a rule's then: list and the journal's "type"; its
	// spec's Kind() returns it.
	name string
	// spec returns a zero spec for the loader to decode into.
	spec func() Spec
	// do takes the action, or under o.dry() says what it would do. It
	// commits with o.intent before it changes anything (journaling what
	// reverts it) and records the outcome with o.finish.
	do func(r *Runner, ctx context.Context, o *op, s Spec)
	// revert takes back what do changed, from the Undo its intent
	// journaled, and says what it did. nil: the kind cannot be undone (what
	// a kill, an archive or an exec did stays done). An undoable action is
	// active in the journal until it is reverted (`picket undo`, its time
	// being up, or a restart finding it interrupted).
	revert func(r *Runner, a Action) (string, error)
	// timed: the action ends by itself at its journal entry's Until (do
	// gives o.intent the end, and only a timed kind does; the dashboard
	// relies on it) by a timer do arms with r.arm. Close ends it early, `picket check` waits for
	// it, and with Options.RevertOnRecover a restarted Runner reverts one
	// still in force instead of re-arming it. A timed kind has a revert.
	timed bool
	// sweep, when set, runs at the end of Recover with this kind's actions
	// still in force, and removes what the kind left on the host that none
	// of them accounts for (rules in picket's nftables table whose throttle
	// the journal no longer holds).
	sweep func(r *Runner, inForce []Action) error
	// needs says what of the host the kind depends on (needs.go): an error
	// refuses it on this host (validate says so, the daemon says it once at
	// start, and Do refuses at once), limits narrow what it can reach.
	needs func(h *hostcap.Set) (limits []string, refused error)
}

// kinds lists every action kind, sorted by name. It is a function, not a
// variable: the kinds' methods reach back into the table (a throttle arms a
// timer that reverts through it), which a package variable could not.
func kinds() []kind {
	return []kind{
		{name: "archive", spec: func() Spec { return &ArchiveSpec{} }, do: doing((*Runner).archive), needs: archiveNeeds},
		{name: "exec", spec: func() Spec { return &ExecSpec{} }, do: doing((*Runner).runExec)},
		{name: "freeze", spec: func() Spec { return &FreezeSpec{} }, do: doing((*Runner).freeze), revert: (*Runner).unfreeze, timed: true, needs: freezeNeeds},
		{name: "freeze_cgroup", spec: func() Spec { return &FreezeCgroupSpec{} }, do: doing((*Runner).freezeCgroup), revert: (*Runner).unfreeze, timed: true, needs: freezeCgroupNeeds},
		{name: "kill", spec: func() Spec { return &KillSpec{} }, do: doing((*Runner).kill), needs: killNeeds},
		{name: "kill_cgroup", spec: func() Spec { return &KillCgroupSpec{} }, do: doing((*Runner).killCgroup), needs: killNeeds},
		{name: "limit", spec: func() Spec { return &LimitSpec{} }, do: doing((*Runner).limit), revert: (*Runner).unlimit, timed: true},
		{name: "sysctl", spec: func() Spec { return &SysctlSpec{} }, do: doing((*Runner).sysctl), revert: (*Runner).restoreSysctl, needs: sysctlNeeds},
		{name: "throttle", spec: func() Spec { return &ThrottleSpec{} }, do: doing((*Runner).throttle), revert: (*Runner).unthrottle, timed: true,
			sweep: (*Runner).sweepThrottles, needs: throttleNeeds},
	}
}

// doing adapts a kind's method, which takes its own spec type, to kind.do.
func doing[S Spec](f func(*Runner, context.Context, *op, S)) func(*Runner, context.Context, *op, Spec) {
	return func(r *Runner, ctx context.Context, o *op, s Spec) {
		t, ok := s.(S)
		if !ok {
			o.refuse(fmt.Errorf("a %T is not a %s action's spec", s, s.Kind()))
			return
		}
		f(r, ctx, o, t)
	}
}

// kindNamed finds name in ks (nil when no kind has that name: a journal
// written by a newer picket may hold one).
func kindNamed(ks []kind, name string) *kind {
	for i := range ks {
		if ks[i].name == name {
			return &ks[i]
		}
	}
	return nil
}

// NewSpec returns a fresh zero Spec for kind, for the loader to decode into.
func NewSpec(kind string) (Spec, bool) {
	if k := kindNamed(kinds(), kind); k != nil {
		return k.spec(), true
	}
	return nil, false
}

// Kinds lists the action kinds NewSpec knows, sorted.
func Kinds() []string {
	ks := kinds()
	out := make([]string, len(ks))
	for i, k := range ks {
		out[i] = k.name
	}
	return out
}

// Undoable reports whether `picket undo` can revert this kind of action.
func Undoable(kind string) bool {
	k := kindNamed(kinds(), kind)
	return k != nil && k.revert != nil
}

// Timed reports whether this kind of action ends by itself when its time is
// up (and so lasts only while a Runner is there to end it: a one-shot
// caller waits for it with Runner.Wait).
func Timed(kind string) bool {
	k := kindNamed(kinds(), kind)
	return k != nil && k.timed
}
