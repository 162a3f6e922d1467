package act

import (
	"fmt"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/picket-guard/picket/internal/procid"
)

// maxCmdline bounds the command line journaled per target: enough to tell
// one imapd from another, not a megabyte argv per process.
const maxCmdline = 256

// identify says who ps are, for the journal: read now, while they are
// still the processes selected.
func (r *Runner) identify(ps []proc) []Target {
	if len(ps) == 0 {
		return nil
	}
	btime, _ := r.procs.bootTime()
	acc := r.procs.users.Accounts()
	out := make([]Target, len(ps))
	for i, p := range ps {
		out[i] = Target{PID: p.pid, UID: p.uid, User: acc.Name(p.uid), Comm: p.comm,
			Start: procid.StartTime(btime, p.start).UTC(), Cmdline: bounded(r.procs.cmdline(p.pid), maxCmdline)}
	}
	return out
}

// bounded cuts s to at most n bytes, on a character boundary.
func bounded(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[:n]
	for i := 0; i < utf8.UTFMax-1 && len(s) > 0; i++ {
		if r, size := utf8.DecodeLastRuneInString(s); r != utf8.RuneError || size != 1 {
			break
		}
		s = s[:len(s)-1] // a character cut in two
	}
	return s + "…"
}

// Describe sums targets up for people by command and user, the biggest
// groups first: "120 imapd of nobody", "118 imapd of nobody, 2 pop3d of
// alice", at most three groups and then "and 4 more". Names are as the
// processes chose them: escape the result before printing it.
func Describe(ts []Target) string {
	type group struct {
		comm, user string
		n          int
	}
	idx := map[[2]string]int{}
	var gs []group
	for _, t := range ts {
		k := [2]string{t.Comm, t.User}
		i, ok := idx[k]
		if !ok {
			i = len(gs)
			idx[k] = i
			gs = append(gs, group{comm: t.Comm, user: t.User})
		}
		gs[i].n++
	}
	sort.SliceStable(gs, func(i, j int) bool { return gs[i].n > gs[j].n })
	parts := make([]string, 0, 4)
	for i, g := range gs {
		if i == 3 {
			rest := 0
			for _, g := range gs[3:] {
				rest += g.n
			}
			parts = append(parts, fmt.Sprintf("and %d more", rest))
			break
		}
		parts = append(parts, fmt.Sprintf("%d %s of %s", g.n, g.comm, g.user))
	}
	return strings.Join(parts, ", ")
}
