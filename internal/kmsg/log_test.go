package kmsg

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/picket-guard/picket/internal/snapshot"
)

var boot = time.Date(2026, 11, 23, 2, 0, 0, 0, time.UTC)

// readFixture reads a stream of records into a new Log, as picket doctor
// reads the buffer.
func readFixture(t *testing.T, name string, opts Options) (*Log, []snapshot.KernelMessage) {
	t.Helper()
	r, err := Open(filepath.Join("testdata", name), FromFirst)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if opts.Boot.IsZero() {
		opts.Boot = boot
	}
	l := NewLog(opts)
	var got []snapshot.KernelMessage
	err = r.Backlog(context.Background(), func(b []byte) { l.Add(b, func(m snapshot.KernelMessage) { got = append(got, m) }) })
	if err != nil {
		t.Fatal(err)
	}
	l.Flush(func(m snapshot.KernelMessage) { got = append(got, m) })
	return l, got
}

func TestLogCatalogueStream(t *testing.T) {
	l, emitted := readFixture(t, "catalogue.kmsg", Options{FromFirst: true, BootID: "b1"})
	s := l.Summary(boot.Add(30 * time.Minute))
	// 1000 records overwritten before the first one read, 6 in the gap
	// 1014..1019 (read(2) said EPIPE).
	if s.Lost != 1000+6 {
		t.Errorf("lost = %d, want 1006", s.Lost)
	}
	if s.Malformed != 1 {
		t.Errorf("malformed = %d, want 1 (the line that is not a record)", s.Malformed)
	}
	if s.NextSeq != 1027 || s.BootID != "b1" || !s.Available || s.Mode != "backlog" || s.Source != "/dev/kmsg" {
		t.Errorf("summary header = %+v", s)
	}
	// Kernel records: 1000..1013 (14), 1021..1026 (6), not the user one.
	if s.Records != 20 {
		t.Errorf("records = %d, want 20", s.Records)
	}
	// Unknown: the hung task's two detail lines, virtio, invoked oom-killer, oom_reaper.
	if s.Unknown != 5 || s.UnknownErrors != 2 {
		t.Errorf("unknown = %d (errors %d), want 5 (2)", s.Unknown, s.UnknownErrors)
	}
	// The userspace record says the kernel's words and is not counted.
	if s.User.Count != 1 || len(s.User.Recent) != 1 || s.User.Recent[0].Facility != 1 || s.User.Recent[0].Text != "TCP: too many orphaned sockets" {
		t.Errorf("user = %+v", s.User)
	}
	want := map[string]uint64{
		KindTCPOrphans: 1, KindTCPMemory: 1, KindSocketMemory: 1, KindConntrackFull: 1, KindFileMax: 1, KindOOMKill: 1,
		KindForkRejected: 2, KindSYNFlood: 2, KindPageAllocFail: 1, KindHungTask: 1, KindNeighOverflow: 1, KindTimeWaitBucket: 1,
	}
	if len(s.Kinds) != len(Kinds()) {
		t.Fatalf("%d kinds in the summary, want every one of %d", len(s.Kinds), len(Kinds()))
	}
	var total uint64
	for _, k := range s.Kinds {
		if k.Count != want[k.Kind] || k.LastHour != int(want[k.Kind]) {
			t.Errorf("%s: count %d, last hour %d, want %d", k.Kind, k.Count, k.LastHour, want[k.Kind])
		}
		total += k.Count
		if k.Source == "" || k.Findings == nil {
			t.Errorf("%s: source %q findings %v", k.Kind, k.Source, k.Findings)
		}
	}
	if int(total) != len(emitted) {
		t.Errorf("%d messages emitted, %d counted", len(emitted), total)
	}

	fr := s.Kind(KindForkRejected)
	if fr.Fields.Cgroup != "/user.slice/x\n\x1b[31mred" || fr.Message != `cgroup: fork rejected by pids controller in /user.slice/x\x0a\x1b[31mred` {
		t.Errorf("fork-rejected: last = %q, fields %+v (the name decoded, the message as the kernel wrote it)", fr.Message, fr.Fields)
	}
	if len(fr.Recent) != 2 || fr.Recent[0].Fields.Cgroup != "/system.slice/apache2.service" {
		t.Errorf("fork-rejected recent = %+v", fr.Recent)
	}
	if !fr.First.Equal(boot.Add(5000500*time.Microsecond).Truncate(time.Millisecond)) || !fr.Last.Equal(boot.Add(5002200*time.Microsecond).Truncate(time.Millisecond)) {
		t.Errorf("fork-rejected first %v last %v", fr.First, fr.Last)
	}
	// The host-wide OOM kill: victim from the kill line, cgroup from the
	// summary line before it.
	oom := s.Kind(KindOOMKill)
	wantOOM := snapshot.KernelFields{PID: 3120, Comm: "mysqld", UID: u32(111), Cgroup: "/system.slice/mysql.service",
		Constraint: "CONSTRAINT_NONE", RSSKB: 1843200 + 1024}
	if !reflect.DeepEqual(oom.Fields, wantOOM) || oom.Recent[0].Level != 3 || oom.Source != "mm/oom_kill.c __oom_kill_process()" {
		t.Errorf("oom-kill = %+v\nfields %+v", oom, oom.Fields)
	}
	if k := s.Kind(KindTCPOrphans); !reflect.DeepEqual(k.Findings, []string{"tcp-orphans"}) {
		t.Errorf("tcp-orphans findings = %v", k.Findings)
	}
	if k := s.Kind(KindSocketMemory); !reflect.DeepEqual(k.Findings, []string{"tcp-orphans", "tcp-memory"}) {
		t.Errorf("out-of-socket-memory findings = %v", k.Findings)
	}

	// An hour and a half later, the counts since boot stay and the hour's
	// are gone.
	s = l.Summary(boot.Add(90 * time.Minute))
	if k := s.Kind(KindForkRejected); k.Count != 2 || k.LastHour != 0 {
		t.Errorf("later: fork-rejected count %d last hour %d, want 2, 0", k.Count, k.LastHour)
	}
}

// The OOM kill this kernel (6.18) logged for a process over a 16 MiB
// memory cgroup: 78 records, one kill.
func TestLogOOMCapture(t *testing.T) {
	l, emitted := readFixture(t, "oom-memcg-6.18.kmsg", Options{})
	s := l.Summary(boot.Add(time.Hour))
	if len(emitted) != 1 || emitted[0].Kind != KindOOMKill {
		t.Fatalf("emitted %+v, want one oom-kill", emitted)
	}
	want := snapshot.KernelFields{PID: 22741, Comm: "python3", UID: u32(0), Cgroup: "/picket-kmsg-try-22739",
		OOMCgroup: "/picket-kmsg-try-22739", Constraint: "CONSTRAINT_MEMCG", Memcg: true, RSSKB: 16128 + 6648}
	if !reflect.DeepEqual(emitted[0].Fields, want) {
		t.Errorf("fields %+v, want %+v", emitted[0].Fields, want)
	}
	if s.Records != 78 || s.Unknown != 76 || s.Lost != 0 {
		t.Errorf("records %d unknown %d lost %d, want 78 76 0 (not reading from the first, nothing is lost)", s.Records, s.Unknown, s.Lost)
	}
}

func TestLogOldKernels(t *testing.T) {
	l, _ := readFixture(t, "old-kernels.kmsg", Options{})
	s := l.Summary(boot.Add(24*time.Hour + time.Minute))
	for kind, n := range map[string]uint64{KindOOMKill: 1, KindSocketMemory: 1, KindSYNFlood: 2, KindConntrackFull: 2, KindNeighOverflow: 1, KindForkRejected: 1, KindFileMax: 1} {
		if k := s.Kind(kind); k.Count != n || k.LastHour != int(n) {
			t.Errorf("%s: count %d last hour %d, want %d", kind, k.Count, k.LastHour, n)
		}
	}
	// The line printed in two pieces (flags c and +) is read as one.
	if k := s.Kind(KindForkRejected); k.Fields.Cgroup != "/www" {
		t.Errorf("fork-rejected joined = %+v", k)
	}
	if k := s.Kind(KindOOMKill); k.Fields.PID != 1234 || k.Fields.Comm != "java" || k.Fields.UID != nil {
		t.Errorf("old oom-kill = %+v", k.Fields)
	}
	if s.Unknown != 1 { // "Kill process ... or sacrifice child": the choice, not the kill
		t.Errorf("unknown = %d, want 1", s.Unknown)
	}
}

// A restarted reader resumes after the last sequence number it saved: a
// message already seen is neither counted nor emitted again, one logged
// in between is, and a state from another boot is not used.
func TestLogResume(t *testing.T) {
	dir := t.TempDir()
	recs := []string{
		"6,10,1000000,-;cgroup: fork rejected by pids controller in /a\n",
		"6,11,2000000,-;something else\n",
	}
	l := NewLog(Options{Boot: boot, BootID: "boot-1", FromFirst: true})
	var emitted []string
	emit := func(m snapshot.KernelMessage) { emitted = append(emitted, m.Fields.Cgroup) }
	for _, r := range recs {
		l.Add([]byte(r), emit)
	}
	path := filepath.Join(dir, "kernel-log.json")
	if err := SaveState(path, l.State()); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("state file %v %v, want mode 0600", fi, err)
	}

	// The restart: the same buffer again, and one more record.
	st, err := LoadState(path)
	if err != nil {
		t.Fatal(err)
	}
	l2 := NewLog(Options{Boot: boot, BootID: "boot-1", FromFirst: true})
	if !l2.Restore(st) {
		t.Fatal("state of the same boot not restored")
	}
	recs = append(recs, "6,12,3000000,-;cgroup: fork rejected by pids controller in /b\n")
	for _, r := range recs {
		l2.Add([]byte(r), emit)
	}
	if !reflect.DeepEqual(emitted, []string{"/a", "/b"}) {
		t.Errorf("emitted %v, want /a then /b, each once", emitted)
	}
	s := l2.Summary(boot.Add(time.Minute))
	if k := s.Kind(KindForkRejected); k.Count != 2 || k.LastHour != 2 || len(k.Recent) != 2 {
		t.Errorf("after restart: %+v", k)
	}
	if s.Records != 3 || s.Unknown != 1 || s.Lost != 10 || s.NextSeq != 13 || s.ResumedSeq != 12 {
		t.Errorf("after restart: records %d unknown %d lost %d next %d", s.Records, s.Unknown, s.Lost, s.NextSeq)
	}

	// Another boot: sequence numbers started again; the state is not used.
	l3 := NewLog(Options{Boot: boot, BootID: "boot-2"})
	if l3.Restore(st) {
		t.Error("state of another boot restored")
	}
	if st, err := LoadState(filepath.Join(dir, "missing")); err != nil || st.BootID != "" {
		t.Errorf("missing state: %+v %v", st, err)
	}
	os.WriteFile(path, []byte("{not json"), 0o600)
	if _, err := LoadState(path); err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("corrupt state: err = %v, want one naming the file", err)
	}
}

// Memory stays bounded whatever the kernel says: a ring per kind, counts
// for the rest.
func TestLogBounded(t *testing.T) {
	l := NewLog(Options{Boot: boot, Ring: 4})
	for i := 0; i < 1000; i++ {
		l.Add([]byte(fmt.Sprintf("6,%d,%d,-;cgroup: fork rejected by pids controller in /cg%d\n", 3*i, i*1000, i)), nil)
		l.Add([]byte(fmt.Sprintf("6,%d,%d,-;unknown message %d %s\n", 3*i+1, i*1000, i, strings.Repeat("x", 2000))), nil)
		l.Add([]byte(fmt.Sprintf("14,%d,%d,-;from userspace %d\n", 3*i+2, i*1000, i)), nil)
	}
	s := l.Summary(boot.Add(time.Minute))
	k := s.Kind(KindForkRejected)
	if k.Count != 1000 || len(k.Recent) != 4 || k.Recent[3].Fields.Cgroup != "/cg999" || k.Recent[0].Fields.Cgroup != "/cg996" {
		t.Errorf("count %d, recent %d (%+v)", k.Count, len(k.Recent), k.Recent)
	}
	if s.Unknown != 1000 || s.Records != 2000 || s.User.Count != 1000 || len(s.User.Recent) != 4 || s.Lost != 0 {
		t.Errorf("unknown %d records %d user %d/%d lost %d", s.Unknown, s.Records, s.User.Count, len(s.User.Recent), s.Lost)
	}
	// A sequence number seen already (the same buffer read again) is
	// not counted twice.
	l.Add([]byte("6,0,0,-;cgroup: fork rejected by pids controller in /cg0\n"), nil)
	if k := l.Summary(boot).Kind(KindForkRejected); k.Count != 1000 {
		t.Errorf("a record read twice counted twice: %d", k.Count)
	}
	long := NewLog(Options{Boot: boot})
	long.Add([]byte("6,1,1,-;TCP: too many orphaned sockets"+strings.Repeat(" ", 0)+"\n"), nil)
	long.Add([]byte("6,2,1,-;cgroup: fork rejected by pids controller in /"+strings.Repeat("y", 3000)+"\n"), nil)
	if m := long.Summary(boot).Kind(KindForkRejected).Recent[0]; len(m.Text) != maxText {
		t.Errorf("a long message is kept whole (%d bytes), want cut at %d", len(m.Text), maxText)
	}
}

func TestLogFail(t *testing.T) {
	l := NewLog(Options{})
	l.Fail(os.ErrPermission)
	if s := l.Summary(boot); s.Available || s.Error == "" {
		t.Errorf("failed log summary = %+v", s)
	}
	l.Fail(nil)
	if s := l.Summary(boot); !s.Available || s.Error != "" {
		t.Errorf("recovered log summary = %+v", s)
	}
}

func TestReadOnce(t *testing.T) {
	proc := t.TempDir()
	os.MkdirAll(filepath.Join(proc, "sys", "kernel", "random"), 0o755)
	os.WriteFile(filepath.Join(proc, "stat"), []byte("cpu  1 2 3\nbtime 1795399200\nprocesses 10\n"), 0o644)
	os.WriteFile(filepath.Join(proc, "sys", "kernel", "random", "boot_id"), []byte("0e5d\n"), 0o644)
	s, err := ReadOnce(context.Background(), filepath.Join("testdata", "catalogue.kmsg"), BootOptions(proc), time.Unix(1795399200+3600, 0))
	if err != nil {
		t.Fatal(err)
	}
	k := s.Kind(KindTCPOrphans)
	if s.BootID != "0e5d" || s.Source != "/dev/kmsg" || k.Count != 1 || !k.Last.Equal(time.Unix(1795399205, 0).UTC()) || k.LastHour != 1 {
		t.Errorf("ReadOnce: boot %q, tcp-orphans %+v", s.BootID, k)
	}
	if _, err := ReadOnce(context.Background(), filepath.Join(proc, "no-kmsg"), Options{}, time.Now()); !os.IsNotExist(err) {
		t.Errorf("missing log: err = %v", err)
	}
	if _, err := BootTime(t.TempDir()); err == nil {
		t.Error("BootTime without a stat file: no error")
	}
	os.WriteFile(filepath.Join(proc, "stat"), []byte("cpu 1\nbtime x\n"), 0o644)
	if _, err := BootTime(proc); err == nil || !strings.Contains(err.Error(), "stat:2") {
		t.Errorf("bad btime: err = %v, want the file and line", err)
	}
}

// The lines a catalogue entry does not know, most of any burst, cost no
// allocation: they are only counted.
func TestAddUnknownAllocatesNothing(t *testing.T) {
	l := NewLog(Options{Boot: boot})
	recs := [][]byte{
		[]byte("4,1,2,-; __handle_mm_fault+0xa64/0xf80\n"),
		[]byte("5,2,3,-;virtio_blk virtio1: [vda] new size\n SUBSYSTEM=virtio\n DEVICE=+virtio:virtio1\n"),
		[]byte("6,3,4,-;Out of memory: Kill process 1234 (java) score 900 or sacrifice child\n"),
	}
	n := testing.AllocsPerRun(100, func() {
		l.next = 0 // read as new each time
		for _, r := range recs {
			l.Add(r, nil)
		}
	})
	if n != 0 {
		t.Errorf("%v allocations for %d unknown records", n, len(recs))
	}
}
