package act

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestJournalFold(t *testing.T) {
	dir := t.TempDir()
	j, err := OpenJournal(dir, JournalOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 4, 28, 10, 0, 0, 0, time.UTC)
	add := func(e Entry) {
		t.Helper()
		if err := j.Append(e); err != nil {
			t.Fatal(err)
		}
	}
	add(Entry{ID: "k", Time: t0, Phase: PhaseIntent, Type: "kill", Rule: "storm", Targets: []any{1, 2}})
	add(Entry{ID: "k", Time: t0, Phase: PhaseResult, Type: "kill", Result: "killed 2"})
	add(Entry{ID: "t", Time: t0, Phase: PhaseIntent, Type: "throttle", Undo: &Undo{Proto: "tcp", Port: 80}, Until: t0.Add(10 * time.Minute)})
	add(Entry{ID: "t", Time: t0, Phase: PhaseResult, Type: "throttle", Result: "dropping"})
	add(Entry{ID: "s", Time: t0, Phase: PhaseIntent, Type: "sysctl", Undo: &Undo{Key: "k", Old: "1", New: "2"}})
	add(Entry{ID: "s", Time: t0, Phase: PhaseResult, Type: "sysctl", Result: "set"})
	add(Entry{ID: "s", Time: t0.Add(time.Minute), Phase: PhaseRevert, Type: "sysctl", Result: "undone"})
	add(Entry{ID: "f", Time: t0, Phase: PhaseIntent, Type: "freeze", Undo: &Undo{Method: "sigstop"}, Until: t0.Add(time.Minute)})
	add(Entry{ID: "r", Time: t0, Phase: PhaseRefused, Type: "kill", Result: "rate-limited"})
	j.Close()
	// A torn last line (a crash mid-write) is skipped and named.
	f, _ := os.OpenFile(filepath.Join(dir, JournalFile), os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(`{"id":"x","ti`)
	f.Close()

	es, err := ReadJournal(dir)
	if err == nil || !strings.Contains(err.Error(), "line 10") {
		t.Errorf("torn line: %v", err)
	}
	want := map[string]string{"k": StateDone, "t": StateActive, "s": StateReverted, "f": StateInFlight, "r": StateRefused}
	for _, a := range Actions(es, t0.Add(time.Second)) {
		if a.State != want[a.ID] {
			t.Errorf("%s: state %s, want %s", a.ID, a.State, want[a.ID])
		}
	}
	for _, a := range Actions(es, t0.Add(time.Hour)) {
		if a.ID == "t" && a.State != StateExpired {
			t.Errorf("throttle past its time: %s", a.State)
		}
	}
	if es, err := ReadJournal(t.TempDir()); es != nil || err != nil {
		t.Errorf("missing journal: %v %v", es, err)
	}
}

func TestJournalFileMode(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	j, err := OpenJournal(dir, JournalOptions{})
	if err != nil {
		t.Fatal(err)
	}
	j.Close()
	fi, err := os.Stat(filepath.Join(dir, JournalFile))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("journal mode %v %v", fi.Mode(), err)
	}
}

// sysctlRunner is a Runner over a fixture root (sysctls are files there),
// so journal tests change nothing on the host.
func sysctlRunner(t *testing.T, root, state string, opts Options) *Runner {
	t.Helper()
	opts.Root, opts.StateDir = root, state
	return newRunner(t, opts)
}

func setOrphans(t *testing.T, r *Runner, v string) Result {
	t.Helper()
	res := r.Do(t.Context(), Request{Rule: "orphans", Spec: &SysctlSpec{Key: "net.ipv4.tcp_max_orphans", Value: v}})
	if res.Error != "" || res.ID == "" {
		t.Fatalf("sysctl %s: %+v", v, res)
	}
	return res
}

// A crash (or a full disk) mid-write leaves half a line. Reopened, the
// journal cuts it off and says so, so the next entry (here the revert of a
// sysctl) is not swallowed by it: the sysctl stays undone after a restart.
func TestJournalRepairsHalfWrittenLine(t *testing.T) {
	root, state := fixtureRoot(t), t.TempDir()
	r1 := sysctlRunner(t, root, state, Options{})
	res := setOrphans(t, r1, "262144")
	r1.Close()
	f, err := os.OpenFile(filepath.Join(state, JournalFile), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(`{"id":"20261201T000000-abcdef","time":"2026-12-01T00:00:00Z","phase":"inte`)
	f.Close()

	var logs strings.Builder
	r2 := sysctlRunner(t, root, state, Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if !strings.Contains(logs.String(), "half-written last line") {
		t.Errorf("the repair was not logged:\n%s", logs.String())
	}
	if _, err := r2.Undo(t.Context(), res.ID); err != nil {
		t.Fatal(err)
	}
	es, err := ReadJournal(state)
	if err != nil {
		t.Errorf("journal after the repair: %v", err)
	}
	if got := strings.Join(phases(es, res.ID), ","); got != "intent,result,revert" {
		t.Errorf("entries of %s: %s, want intent,result,revert", res.ID, got)
	}
	r2.Close()
	r3 := sysctlRunner(t, root, state, Options{})
	if a, err := r3.action(res.ID); err != nil || a.State != StateReverted {
		t.Errorf("after a restart: %+v %v, want reverted", a.State, err)
	}
}

// A line another process left half-written while this one holds the
// journal open is ended before the next entry, which stays whole.
func TestJournalEndsALineTornByAnotherProcess(t *testing.T) {
	root, state := fixtureRoot(t), t.TempDir()
	r := sysctlRunner(t, root, state, Options{})
	setOrphans(t, r, "262144")
	f, _ := os.OpenFile(filepath.Join(state, JournalFile), os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(`{"id":"x","phase":"res`)
	f.Close()
	res := setOrphans(t, r, "131072")
	es, err := ReadJournal(state)
	if err == nil || !strings.Contains(err.Error(), "line 3: not a journal entry") {
		t.Errorf("torn line: %v", err)
	}
	if got := strings.Join(phases(es, res.ID), ","); got != "intent,result" {
		t.Errorf("the entry after the torn line: %s", got)
	}
}

// A line longer than any picket writes (here 17 MiB: more than the old
// reader's buffer) is skipped; the actions after it stay known, to the
// index and to readers.
func TestJournalSkipsAnOverlongLine(t *testing.T) {
	root, state := fixtureRoot(t), t.TempDir()
	big := Options{Journal: JournalOptions{MaxBytes: 64 << 20}} // no rotation: the long line stays in the live file
	r1 := sysctlRunner(t, root, state, big)
	first := setOrphans(t, r1, "262144")
	r1.Close()
	f, _ := os.OpenFile(filepath.Join(state, JournalFile), os.O_APPEND|os.O_WRONLY, 0)
	f.Write(append(bytes.Repeat([]byte("x"), 17<<20), '\n'))
	f.Close()
	r2 := sysctlRunner(t, root, state, big)
	second := r2.Do(t.Context(), Request{Rule: "mem", Spec: &SysctlSpec{Key: "net.ipv4.tcp_mem", Value: "4000 5000 6000"}})
	if second.Error != "" {
		t.Fatal(second)
	}
	r2.Close()

	es, err := ReadJournal(state)
	if err == nil || !strings.Contains(err.Error(), "longer than") {
		t.Errorf("ReadJournal: %v", err)
	}
	if len(phases(es, first.ID)) != 2 || len(phases(es, second.ID)) != 2 {
		t.Errorf("entries around the long line: %v %v", phases(es, first.ID), phases(es, second.ID))
	}
	r3 := sysctlRunner(t, root, state, big)
	open, _ := r3.journal.Open(time.Now())
	if len(open) != 2 || open[0].ID != first.ID || open[1].ID != second.ID {
		t.Errorf("open actions: %+v", open)
	}
	as, err := TailActions(state, 10, time.Now())
	if err == nil || len(as) != 2 {
		t.Errorf("TailActions: %d actions, %v", len(as), err)
	}
}

// The journal rotates past its size, keeping Keep generations, and the
// live file carries every action still undoable (the first sysctl), so
// Undo, Recover and the tail find it after any number of rotations; the
// tail reads across generations without counting a carried entry twice.
func TestJournalRotatesAndCarriesWhatIsOpen(t *testing.T) {
	root, state := fixtureRoot(t), t.TempDir()
	r := sysctlRunner(t, root, state, Options{Journal: JournalOptions{MaxBytes: 8 << 10, Keep: 2},
		Limits: Limits{Global: Limit{Actions: -1}, PerRule: Limit{Actions: -1}}})
	held := r.Do(t.Context(), Request{Rule: "mem", Spec: &SysctlSpec{Key: "net.ipv4.tcp_mem", Value: "4000 5000 6000"}})
	if held.Error != "" {
		t.Fatal(held)
	}
	var ids []string
	for i := 0; i < 60; i++ {
		res := setOrphans(t, r, strconv.Itoa(70000+i))
		if _, err := r.Undo(t.Context(), res.ID); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, res.ID)
	}
	gens := generations(state)
	if len(gens) != 3 {
		t.Errorf("generations %v, want the live file and 2 rotated", gens)
	}
	for _, g := range gens {
		if fi, err := os.Stat(g); err != nil || fi.Size() > 8<<10+1024 {
			t.Errorf("%s: %v bytes (%v)", g, fi.Size(), err)
		}
	}
	live, _ := ReadJournal(state)
	if got := phases(live, held.ID); strings.Join(got, ",") != "intent,result" || !live[0].Carried {
		t.Fatalf("the live journal does not carry the undoable sysctl: %v", got)
	}

	// The tail: newest first, exactly the last entries written.
	tail, err := ReadTail(state, 6)
	if err != nil || len(tail) != 6 {
		t.Fatalf("ReadTail: %d %v", len(tail), err)
	}
	last := ids[len(ids)-1]
	if tail[0].ID != last || tail[0].Phase != PhaseRevert || tail[2].Phase != PhaseIntent || tail[3].ID != ids[len(ids)-2] {
		t.Errorf("tail: %+v", tail[:4])
	}
	as, err := TailActions(state, 5, time.Now())
	if err != nil || len(as) != 5 || as[4].ID != last || as[0].ID != ids[len(ids)-5] {
		t.Fatalf("TailActions(5): %d %v", len(as), err)
	}
	for _, a := range as {
		if a.State != StateReverted {
			t.Errorf("%s: %s", a.ID, a.State)
		}
	}
	all, err := TailActions(state, 0, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, a := range all {
		if seen[a.ID] {
			t.Errorf("%s listed twice", a.ID)
		}
		seen[a.ID] = true
	}
	if !seen[held.ID] || !seen[last] {
		t.Errorf("all actions: %d, held %v, last %v", len(all), seen[held.ID], seen[last])
	}

	// Undo after the rotations, from a new Runner (another process would
	// be the same): the index rebuilt from the live file alone finds it.
	r.Close()
	r2 := sysctlRunner(t, root, state, Options{})
	if _, err := r2.Undo(t.Context(), held.ID); err != nil {
		t.Fatalf("undo of the carried sysctl: %v", err)
	}
	if _, err := r2.Undo(t.Context(), ids[0]); err == nil || !strings.Contains(err.Error(), "no action") {
		t.Errorf("an action rotated out of every kept generation: %v", err)
	}
	if _, err := r2.Undo(t.Context(), last); err == nil || !strings.Contains(err.Error(), "already reverted") {
		t.Errorf("a reverted action, found by its id: %v", err)
	}
}

// Another process (picket undo) appending while this one rotates: neither
// loses an entry, and each sees the other's.
func TestJournalRotationUnderAnotherWriter(t *testing.T) {
	state := t.TempDir()
	a, err := OpenJournal(state, JournalOptions{MaxBytes: 4 << 10, Keep: 5})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := OpenJournal(state, JournalOptions{MaxBytes: 1 << 30})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	t0 := time.Now().UTC()
	for i := 0; i < 100; i++ {
		j := a
		if i%3 == 0 {
			j = b
		}
		if err := j.Append(Entry{ID: fmt.Sprintf("e%03d", i), Time: t0.Add(time.Duration(i) * time.Millisecond), Phase: PhaseRefused, Type: "kill"}); err != nil {
			t.Fatal(err)
		}
	}
	as, err := TailActions(state, 0, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if len(as) != 100 {
		t.Fatalf("%d actions, want 100", len(as))
	}
	for i, x := range as {
		if x.ID != fmt.Sprintf("e%03d", i) {
			t.Fatalf("action %d is %s", i, x.ID)
		}
	}
}

// A rate-limited rule due every look writes one entry when its refusals
// start and one with the count when it acts again, not one per refusal;
// the count and the last time are in the journal.
func TestRefusalsAreCounted(t *testing.T) {
	root, state := fixtureRoot(t), t.TempDir()
	now := time.Date(2026, 12, 1, 3, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	r := sysctlRunner(t, root, state, Options{Now: clock, Limits: Limits{PerRule: Limit{Actions: 1, Window: time.Hour}}})
	setOrphans(t, r, "70000")
	for i := 0; i < 58; i++ {
		now = now.Add(2 * time.Second)
		res := r.Do(t.Context(), Request{Rule: "orphans", Spec: &SysctlSpec{Key: "net.ipv4.tcp_max_orphans", Value: strconv.Itoa(80000 + i)}})
		if !res.RateLimited || res.ID == "" {
			t.Fatalf("refusal %d: %+v", i, res)
		}
	}
	refusedLines := func() int {
		n := 0
		for _, e := range journalOf(t, state) {
			if e.Phase == PhaseRefused {
				n++
			}
		}
		return n
	}
	if n := refusedLines(); n != 1 {
		t.Errorf("%d refused lines for 58 refusals in 2 minutes, want 1", n)
	}
	// Ten minutes on, a refusal writes the count so far.
	now = now.Add(refusalEvery)
	r.Do(t.Context(), Request{Rule: "orphans", Spec: &SysctlSpec{Key: "net.ipv4.tcp_max_orphans", Value: "90000"}})
	if n := refusedLines(); n != 2 {
		t.Errorf("%d refused lines after ten minutes, want 2", n)
	}
	// The window frees: the rule acts again and the trip is closed.
	now = now.Add(time.Hour)
	lastRefusal := now.Add(-time.Hour)
	setOrphans(t, r, "95000")
	as, _ := TailActions(state, 0, now)
	var trips []Action
	for _, a := range as {
		if a.State == StateRefused {
			trips = append(trips, a)
		}
	}
	if len(trips) != 1 || trips[0].Count != 59 || !trips[0].Last.Equal(lastRefusal) {
		t.Fatalf("refusal trips: %+v", trips)
	}
	if n := refusedLines(); n != 2 {
		t.Errorf("%d refused lines, want 2 (the final count was already written)", n)
	}
}

func TestPeek(t *testing.T) {
	cases := []struct {
		line, id, phase string
		ok              bool
	}{
		{`{"id":"20261201T030005-3f9c2a","time":"2026-12-01T03:00:05Z","phase":"refused","type":"kill"}`, "20261201T030005-3f9c2a", "refused", true},
		{`{"id":"a\"b","time":"t","phase":"intent"}`, "", "", false},
		{`{"time":"t","id":"x","phase":"intent"}`, "", "", false},
		{`{"id":"x","time":"t"}`, "", "", false},
		{`{"id":"x`, "", "", false},
	}
	for _, c := range cases {
		id, phase, ok := peek([]byte(c.line))
		if ok != c.ok || string(id) != c.id || string(phase) != c.phase {
			t.Errorf("peek(%s) = %q %q %v", c.line, id, phase, ok)
		}
	}
	// What Append writes, peek reads.
	b, _ := json.Marshal(Entry{ID: "20261201T030005-3f9c2a", Time: time.Now(), Phase: PhaseResult, Type: "kill", Targets: []any{1}})
	if id, phase, ok := peek(b); !ok || string(id) != "20261201T030005-3f9c2a" || string(phase) != PhaseResult {
		t.Errorf("peek of an encoded entry: %q %q %v", id, phase, ok)
	}
}

// FuzzJournalLines: whatever bytes the journal holds, the readers do not
// panic, and reading backwards yields exactly the complete lines reading
// forwards does, in reverse.
func FuzzJournalLines(f *testing.F) {
	f.Add([]byte("{\"id\":\"a\",\"phase\":\"intent\"}\n{\"id\":\"a\",\"phase\":\"res"))
	f.Add([]byte("\n\n{\"id\":\"b\"}\n"))
	f.Add(bytes.Repeat([]byte("x"), 70000))
	f.Add(append(bytes.Repeat([]byte("y"), 140000), '\n', 'z', '\n'))
	f.Fuzz(func(t *testing.T, b []byte) {
		var fwd [][]byte
		eachLine(bytes.NewReader(b), func(_ int, line []byte) { fwd = append(fwd, bytes.Clone(line)) })
		var back [][]byte
		eachLineBack(bytes.NewReader(b), int64(len(b)), func(line []byte) bool { back = append(back, bytes.Clone(line)); return true })
		slices.Reverse(back)
		if len(fwd) != len(back) {
			t.Fatalf("%d lines forwards, %d backwards", len(fwd), len(back))
		}
		for i := range fwd {
			if !bytes.Equal(fwd[i], back[i]) {
				t.Fatalf("line %d: %q forwards, %q backwards", i, fwd[i], back[i])
			}
		}
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, JournalFile), b, 0o600)
		ReadJournal(dir)
		ReadTail(dir, 3)
		TailActions(dir, 2, time.Now())
		if j, err := OpenJournal(dir, JournalOptions{}); err == nil {
			j.Open(time.Now())
			j.Close()
		}
	})
}
