package collect

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/picket-guard/picket/internal/snapshot"
	"github.com/picket-guard/picket/internal/testkit"
)

const moscow = "../../testdata/fixtures/moscow"

var fixedNow = time.Date(2026, 11, 23, 3, 0, 0, 0, time.UTC)

func collectRoot(t *testing.T, root string) (*snapshot.Snapshot, error) {
	t.Helper()
	c, err := New(Options{Root: root, Now: func() time.Time { return fixedNow }})
	if err != nil {
		t.Fatalf("New(%s): %v", root, err)
	}
	return c.Collect(context.Background(), Full)
}

func TestMoscowFixture(t *testing.T) {
	s, err := collectRoot(t, moscow)
	if err != nil {
		t.Fatalf("Collect: %v", err)
	}
	if s.Host != "moscow" {
		t.Errorf("host = %q", s.Host)
	}
	// Processes: PIKT's `ps -eo user,comm | sort | uniq -c`.
	if s.Processes.Total != 19 || s.Processes.Threads != 49 {
		t.Errorf("total/threads = %d/%d, want 19/49", s.Processes.Total, s.Processes.Threads)
	}
	g := s.Processes.Groups[0]
	if g.User != "alice" || g.Comm != "imapd" || g.Count != 6 || g.Threads != 6 || g.RSSBytes != 6*700*uint64(os.Getpagesize()) {
		t.Errorf("top group = %+v, want alice imapd ×6", g)
	}
	if g := findGroup(s, "bob", "imapd"); g == nil || g.Count != 3 {
		t.Errorf("bob imapd = %+v, want 3", g)
	}
	if g := findGroup(s, "1003", "leaky"); g == nil {
		t.Errorf("uid without passwd line should be shown as its number")
	}
	if g := findGroup(s, "alice", "$(touch /tmp/x)"); g == nil {
		t.Errorf("hostile comm not kept verbatim in the data")
	}
	kt := findProc(s, 2)
	if kt == nil || !kt.KernelThread || kt.FDs != 0 {
		t.Errorf("kthreadd = %+v, want kernel thread", kt)
	}
	my := findProc(s, 300)
	if my == nil || my.PPID != 1 || my.State != "S" || my.Threads != 28 || my.User != "mysql" ||
		!my.StartTime.Equal(time.Unix(1795395064+30, 0)) || my.FDs != 9 || my.FDLimit != 1024 {
		t.Errorf("mysqld = %+v", my)
	}

	// Sockets: totals over both namespaces, TIME_WAIT and FIN_WAIT1 lines
	// (inode 0) counted, the socket in no table counted as other.
	want := snapshot.SocketCounts{TCP: 7, UDP: 3, Unix: 6, Netlink: 2, Other: 1}
	if s.Sockets.Totals != want {
		t.Errorf("totals = %+v, want %+v", s.Sockets.Totals, want)
	}
	if s.Sockets.Namespaces != 2 {
		t.Errorf("namespaces = %d, want 2", s.Sockets.Namespaces)
	}
	wantStates := map[string]int{"LISTEN": 3, "ESTABLISHED": 2, "TIME_WAIT": 1, "FIN_WAIT1": 1}
	if !equalMaps(s.Sockets.TCPStates, wantStates) {
		t.Errorf("tcp states = %v, want %v", s.Sockets.TCPStates, wantStates)
	}
	holders := map[int]snapshot.Holder{}
	for _, h := range s.Sockets.Processes {
		holders[h.PID] = h
	}
	for pid, want := range map[int]snapshot.SocketCounts{
		300: {TCP: 2, Unix: 3},
		301: {UDP: 2, Netlink: 1},
		302: {Unix: 2},
		303: {TCP: 1, Unix: 1}, // unix 2001 is shared with 302: counted for each holder
		500: {TCP: 1, Unix: 1}, // from its own namespace's tables
		600: {UDP: 1, Other: 1},
	} {
		h, ok := holders[pid]
		if !ok || h.SocketCounts != want || h.Total != want.Sum() {
			t.Errorf("holder %d = %+v, want %+v", pid, h, want)
		}
	}
	if len(holders) != 6 || s.Sockets.Processes[0].PID != 300 {
		t.Errorf("holders = %v, want 6, mysqld first", s.Sockets.Processes)
	}
	if h := holders[600]; h.FDLimit != 8 || h.FDs != 5 {
		t.Errorf("leaky fds = %d/%d, want 5/8", h.FDs, h.FDLimit)
	}

	// Kernel limits with the stories' numbers.
	k := s.Kernel
	if k.Sockstat == nil || k.Sockstat.TCP != (snapshot.SockstatTCP{Inuse: 35938, Orphan: 21564, TW: 70529, Alloc: 35942, MemPages: 1894}) ||
		k.Sockstat.SocketsUsed != 14565 || k.Sockstat.UDP.Inuse != 11 || k.Sockstat.UDP.MemPages != 3 {
		t.Errorf("sockstat = %+v", k.Sockstat)
	}
	if k.Sockstat6 == nil || k.Sockstat6.TCP6 != 2 || k.Sockstat6.UDP6 != 1 {
		t.Errorf("sockstat6 = %+v", k.Sockstat6)
	}
	if len(k.TCPMemPages) != 3 || k.TCPMemPages[0] != 3093984 || k.TCPMemPages[1] != 4125312 || k.TCPMemPages[2] != 6187968 {
		t.Errorf("tcp_mem = %v", k.TCPMemPages)
	}
	if k.TCPMaxOrphans != 65536 || k.PidMax != 32768 || k.ThreadsMax != 256939 || k.NrOpen != 1048576 {
		t.Errorf("scalars = %+v", k)
	}
	if k.FileNr == nil || *k.FileNr != (snapshot.FileNr{Allocated: 14880, Unused: 0, Max: 3247617}) {
		t.Errorf("file-nr = %+v", k.FileNr)
	}
	if k.Conntrack == nil || *k.Conntrack != (snapshot.Conntrack{Count: 1200, Max: 262144}) {
		t.Errorf("conntrack = %+v", k.Conntrack)
	}

	m := s.Memory
	if m.MemAvailableBytes != 512340*1024 || m.SwapTotalBytes != 2097148*1024 || m.SwapFreeBytes != 262144*1024 {
		t.Errorf("meminfo = %+v", m)
	}
	if m.VMStat["pswpin"] != 1523400 || m.VMStat["pswpout"] != 2234500 || m.VMStat["pgmajfault"] != 412345 || m.VMStat["oom_kill"] != 2 {
		t.Errorf("vmstat = %v", m.VMStat)
	}
	if _, kept := m.VMStat["pgfault"]; kept {
		t.Errorf("vmstat keeps counters it does not need")
	}
	if p := m.PSI["memory"]; p.SomeAvg10 != 42.17 || p.FullAvg10 != 31.05 || !p.HasFull || p.SomeTotal != 912345678 {
		t.Errorf("psi memory = %+v", p)
	}

	var nos *snapshot.Beancounter
	for i := range s.Beancounters {
		if s.Beancounters[i].Resource == "numothersock" {
			nos = &s.Beancounters[i]
		}
	}
	if len(s.Beancounters) != 22 || nos == nil || *nos != (snapshot.Beancounter{UID: "101", Resource: "numothersock", Held: 400, MaxHeld: 400, Barrier: 400, Limit: 400, Failcnt: 17}) {
		t.Errorf("beancounters = %d rows, numothersock %+v", len(s.Beancounters), nos)
	}
	if len(s.Errors) != 0 {
		t.Errorf("errors = %v", s.Errors)
	}
}

// TestMoscowGolden pins the whole JSON contract for the fixture.
func TestMoscowGolden(t *testing.T) {
	s, err := collectRoot(t, moscow)
	if err != nil {
		t.Fatal(err)
	}
	s.Kernel.PageSize = 4096 // the fixture's kernel; the test machine's may differ
	got, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	testkit.Golden(t, "moscow.json", append(got, '\n'))

	var sum bytes.Buffer
	if err := snapshot.WriteSummary(&sum, s, snapshot.SummaryOptions{Top: 20}); err != nil {
		t.Fatal(err)
	}
	testkit.Golden(t, "moscow-summary.txt", sum.Bytes())
	if bytes.ContainsAny(sum.Bytes(), "\x1b\x00\r") {
		t.Errorf("summary holds raw control bytes")
	}
}

// TestMissingParts: a host without PSI, beancounters, conntrack, IPv6 or
// vmstat has only those parts empty, and no error.
func TestMissingParts(t *testing.T) {
	root := testkit.CopyTree(t, moscow)
	for _, p := range []string{"proc/pressure", "proc/user_beancounters", "proc/sys/net/netfilter",
		"proc/net/sockstat6", "proc/net/tcp6", "proc/net/udp6", "proc/vmstat", "proc/500/net"} {
		if err := os.RemoveAll(filepath.Join(root, p)); err != nil {
			t.Fatal(err)
		}
	}
	s, err := collectRoot(t, root)
	if err != nil {
		t.Fatalf("Collect with missing files: %v", err)
	}
	if s.Memory.PSI != nil || len(s.Beancounters) != 0 || s.Kernel.Conntrack != nil || s.Kernel.Sockstat6 != nil || s.Memory.VMStat != nil {
		t.Errorf("missing parts not empty: psi=%v bc=%d ct=%v s6=%v", s.Memory.PSI, len(s.Beancounters), s.Kernel.Conntrack, s.Kernel.Sockstat6)
	}
	if s.Processes.Total != 19 || s.Kernel.Sockstat == nil {
		t.Errorf("the rest is gone too: %d processes", s.Processes.Total)
	}
	// pid 500's namespace has no tables now: its sockets count as other.
	for _, h := range s.Sockets.Processes {
		if h.PID == 500 && h.Other != 2 {
			t.Errorf("nginx in an unreadable namespace = %+v", h)
		}
	}
}

// TestMalformed: a malformed file is an error naming the file and line; the
// rest of the snapshot is still collected; nothing panics.
func TestMalformed(t *testing.T) {
	cases := []struct {
		file, content, want string
	}{
		{"proc/user_beancounters", "Version: 2.5\n uid resource held maxheld barrier limit failcnt\n 101: kmemsize 1 2 3 4 5\n numothersock 400 x 400 400 17\n", "user_beancounters:4:"},
		{"proc/user_beancounters", "Version: 2.5\n numproc 1 2 3 4 5\n", "user_beancounters:2: resource row before"},
		{"proc/vmstat", "pswpin 12\npswpout\n", "vmstat:2:"},
		{"proc/net/tcp", TCPHeaderForTest + "   0: 00000000:0CEA 00000000:0000 ZZ 00000000:00000000 00:00000000 00000000    27        0 3001 1\n", "net/tcp:2: bad state"},
		{"proc/net/unix", "Num RefCount Protocol Flags Type St Inode Path\n0000: 00000002 00000000 00010000 0001 01\n", "net/unix:2: no inode"},
		{"proc/300/stat", "300 mysqld S 1\n", "300/stat: line 1: no \"(comm)\""},
		{"proc/300/stat", "300 (mysqld) S 1 300\n", "300/stat: line 1:"},
		{"proc/sys/net/ipv4/tcp_mem", "3093984 4125312 lots\n", "tcp_mem:1: field 3"},
		{"proc/100/status", "Name:\timapd\nUid:\tx\n", "100/status: line 2: bad Uid"},
	}
	for _, tc := range cases {
		t.Run(tc.file, func(t *testing.T) {
			root := testkit.CopyTree(t, moscow)
			if err := os.WriteFile(filepath.Join(root, tc.file), []byte(tc.content), 0o644); err != nil {
				t.Fatal(err)
			}
			s, err := collectRoot(t, root)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.want)
			}
			if !strings.Contains(err.Error(), root) {
				t.Errorf("err %q does not name the file's path", err)
			}
			if s == nil || s.Processes.Total < 18 || len(s.Errors) == 0 {
				t.Errorf("snapshot lost beside the error: %+v", s)
			}
		})
	}
}

const TCPHeaderForTest = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"

func TestNoProcDir(t *testing.T) {
	if _, err := New(Options{Root: t.TempDir()}); err == nil || !strings.Contains(err.Error(), "no proc directory") {
		t.Errorf("New on an empty root: %v", err)
	}
}

func findGroup(s *snapshot.Snapshot, user, comm string) *snapshot.Group {
	for i, g := range s.Processes.Groups {
		if g.User == user && g.Comm == comm {
			return &s.Processes.Groups[i]
		}
	}
	return nil
}

func findProc(s *snapshot.Snapshot, pid int) *snapshot.Process {
	for i, p := range s.Processes.List {
		if p.PID == pid {
			return &s.Processes.List[i]
		}
	}
	return nil
}

func equalMaps(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}
