package doctor

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/picket-guard/picket/internal/kmsg"
	"github.com/picket-guard/picket/internal/snapshot"
)

// kline is one record of a kernel log: its age at t0, level, text (raw:
// escaped here as the kernel does), facility.
type kline struct {
	age   time.Duration
	level int
	text  string
	fac   int
}

// kernelEscape escapes as msg_add_ext_text() in kernel/printk/printk.c.
func kernelEscape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < ' ' || c >= 127 || c == '\\' {
			fmt.Fprintf(&b, `\x%02x`, c)
		} else {
			b.WriteByte(c)
		}
	}
	return b.String()
}

// kernelLogAt reads lines through kmsg's own Log, as picket does, with the
// host booted two hours before t0.
func kernelLogAt(lines ...kline) *snapshot.KernelLog {
	boot := t0.Add(-2 * time.Hour)
	l := kmsg.NewLog(kmsg.Options{Boot: boot})
	for i, k := range lines {
		ts := (2*time.Hour - k.age) / time.Microsecond
		l.Add([]byte(fmt.Sprintf("%d,%d,%d,-;%s\n", k.fac*8+k.level, i, ts, kernelEscape(k.text))), nil)
	}
	return l.Summary(t0)
}

func oomLines(age time.Duration, pid int, comm, cgroup string) []kline {
	return []kline{
		{age, 6, fmt.Sprintf("oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg=%s,task_memcg=%s,task=%s,pid=%d,uid=1001", cgroup, cgroup, comm, pid), 0},
		{age, 3, fmt.Sprintf("Memory cgroup out of memory: Killed process %d (%s) total-vm:100kB, anon-rss:50kB, file-rss:0kB, shmem-rss:0kB, UID:1001 pgtables:8kB oom_score_adj:0", pid, comm), 0},
	}
}

func TestKernelMessagesRaiseFindings(t *testing.T) {
	for _, tc := range []struct {
		name  string
		lines []kline
		id    string
		sev   Severity
		title string
	}{
		{"an OOM kill in a memory cgroup names its victim and cgroup", oomLines(10*time.Minute, 4242, "worker", "/app/worker"),
			"cgroup-limits", Warning, "the OOM killer killed pid 4242 (worker) in cgroup /app/worker: a memory cgroup's limit ran out (once in the last hour, last 10 min before this look)"},
		{"a host-wide OOM kill raises memory-thrashing", []kline{
			{20 * time.Minute, 6, "oom-kill:constraint=CONSTRAINT_NONE,nodemask=(null),cpuset=/,mems_allowed=0,global_oom,task_memcg=/system.slice/mysql.service,task=mysqld,pid=300,uid=27", 0},
			{20 * time.Minute, 3, "Out of memory: Killed process 300 (mysqld) total-vm:1kB, anon-rss:1kB, file-rss:0kB, shmem-rss:0kB, UID:27 pgtables:4kB oom_score_adj:0", 0},
		}, "memory-thrashing", Warning, "the OOM killer killed pid 300 (mysqld) in cgroup /system.slice/mysql.service: the host's memory ran out (once in the last hour, last 20 min before this look)"},
		{"an OOM kill two hours ago is evidence, not a verdict", oomLines(110*time.Minute, 4242, "worker", "/app"),
			"cgroup-limits", OK, ""},
		{"a full conntrack table is critical once drained", []kline{{5 * time.Minute, 4, "nf_conntrack: nf_conntrack: table full, dropping packet", 0}},
			"conntrack", Critical, "the kernel dropped packets for a full conntrack table (once in the last hour, last 5 min before this look)"},
		{"orphan resets", []kline{{time.Minute, 6, "TCP: too many orphaned sockets", 0}, {30 * time.Second, 6, "TCP: too many orphaned sockets", 0}},
			"tcp-orphans", Warning, "the kernel reset sockets for too many orphans: \"TCP: too many orphaned sockets\" 2 times in the last hour"},
		{"file-max", []kline{{20 * time.Minute, 6, "VFS: file-max limit 100000 reached", 0}},
			"fd-exhaustion", Warning, "the host ran out of file handles: \"VFS: file-max limit 100000 reached\""},
		{"a pids refusal names the cgroup", []kline{{3 * time.Minute, 6, "cgroup: fork rejected by pids controller in /user.slice/user-1001.slice", 0}},
			"cgroup-limits", Warning, "the pids controller refused forks in cgroup /user.slice/user-1001.slice"},
		// Old kernels say "Out of socket memory" for both causes: the
		// finding whose numbers stand nearer its limit is the one raised.
		{"out of socket memory, orphans nearer", []kline{{time.Minute, 6, "Out of socket memory", 0}},
			"tcp-orphans", Warning, "the kernel said \"Out of socket memory\" once in the last hour, last 1 min before this look: sockets were reset, for too many orphans"},
		{"written from userspace: not the kernel's word", []kline{{time.Minute, 3, "Out of memory: Killed process 1 (systemd) total-vm:1kB", 1}},
			"memory-thrashing", OK, "no memory stall"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := healthy()
			s.Kernel.Sockstat.TCP.Orphan = 5000 // ×4 nearer tcp_max_orphans than TCP's pages to tcp_mem[2]
			s.Kernel.Conntrack = &snapshot.Conntrack{Count: 10, Max: 65536}
			s.KernelLog = kernelLogAt(tc.lines...)
			r := Run(Input{Cur: s}, Checks())
			f, _ := r.Find(tc.id)
			if f.Severity != tc.sev || !strings.HasPrefix(f.Title, tc.title) {
				t.Errorf("%s: %s %q, want %s %q", tc.id, f.Severity, f.Title, tc.sev, tc.title)
			}
			if tc.id == "tcp-orphans" {
				if m, _ := r.Find("tcp-memory"); m.Severity != OK {
					t.Errorf("tcp-memory raised too: %s", m.Title)
				}
			}
			v, ok := f.Evidence.Get("kernel_messages")
			rows, _ := v.(KernelMessageRows)
			if !ok || (tc.lines[len(tc.lines)-1].fac == 0) != (len(rows) == 1) {
				t.Errorf("kernel_messages = %+v", v)
			}
			if f.Severity != OK && (len(f.Fix) == 0 || !strings.Contains(f.Explanation, "The numbers now: ")) {
				t.Errorf("raised without a fix or without the numbers: %q %q", f.Fix, f.Explanation)
			}
		})
	}
}

func TestOutOfSocketMemoryByTCPMemory(t *testing.T) {
	s := healthy()
	s.Kernel.Sockstat.TCP.MemPages = 1500 // half of tcp_mem[2], below its pressure point
	s.KernelLog = kernelLogAt(kline{time.Minute, 6, "Out of socket memory", 0})
	r := Run(Input{Cur: s}, Checks())
	if o, _ := r.Find("tcp-orphans"); o.Severity != OK {
		t.Errorf("tcp-orphans %s: %s", o.Severity, o.Title)
	}
	if m, _ := r.Find("tcp-memory"); m.Severity != Warning || !strings.Contains(m.Title, "for TCP memory above tcp_mem[2]") {
		t.Errorf("tcp-memory %s: %s", m.Severity, m.Title)
	}
}

// The counters prove what the log, rate-limited or rotated, may not say.
func TestBackingCounters(t *testing.T) {
	prev, cur := healthy(), healthy()
	cur.Time = prev.Time.Add(time.Minute)
	cur.Kernel.Sockstat.TCP.Orphan = 5000
	prev.Kernel.Netstat = &snapshot.Netstat{AbortOnMemory: 100}
	cur.Kernel.Netstat = &snapshot.Netstat{AbortOnMemory: 142}
	prev.Kernel.Conntrack = &snapshot.Conntrack{Count: 10, Max: 65536}
	cur.Kernel.Conntrack = &snapshot.Conntrack{Count: 10, Max: 65536}
	prev.Kernel.ConntrackStat = &snapshot.ConntrackStat{Drop: 7, EarlyDrop: 3}
	cur.Kernel.ConntrackStat = &snapshot.ConntrackStat{Drop: 19, EarlyDrop: 3}
	r := Run(Input{Prev: prev, Cur: cur, Interval: time.Minute}, Checks())
	o, _ := r.Find("tcp-orphans")
	if o.Severity != Warning || !strings.Contains(o.Title, "reset 42 sockets in the last 1m0s for too many orphans") {
		t.Errorf("tcp-orphans %s: %s", o.Severity, o.Title)
	}
	if v, _ := o.Evidence.Get("tcp_abort_on_memory_increase"); v != uint64(42) {
		t.Errorf("increase = %v", v)
	}
	if m, _ := r.Find("tcp-memory"); m.Severity != OK {
		t.Errorf("tcp-memory raised too: %s", m.Title)
	}
	c, _ := r.Find("conntrack")
	if c.Severity != Critical || !strings.Contains(c.Title, "dropped 12 packets") || !strings.Contains(strings.Join(c.Fix, "\n"), "nf_conntrack_max=140000") {
		t.Errorf("conntrack %s: %s %q", c.Severity, c.Title, c.Fix)
	}
	// One look: totals, no verdict from them.
	r = Run(Input{Cur: cur}, Checks())
	if o, _ := r.Find("tcp-orphans"); o.Severity != OK {
		t.Errorf("one look: tcp-orphans %s", o.Severity)
	}
	if c, _ := r.Find("conntrack"); c.Severity != OK {
		t.Errorf("one look: conntrack %s", c.Severity)
	}
}

func TestKernelLogCheck(t *testing.T) {
	s := healthy()
	r := Run(Input{Cur: s}, Checks())
	if f, _ := r.Find("kernel-log"); f.Severity != OK || f.Title != "no kernel log to read here" {
		t.Errorf("no log: %s %s", f.Severity, f.Title)
	}
	s.KernelLog = &snapshot.KernelLog{Error: "/dev/kmsg is not readable: it needs root or CAP_SYSLOG"}
	r = Run(Input{Cur: s}, Checks())
	if f, _ := r.Find("kernel-log"); f.Severity != OK || !strings.Contains(f.Title, "needs root") || r.Status != OK {
		t.Errorf("unreadable: %s %s (report %s): a non-root run must not be unknown", f.Severity, f.Title, r.Status)
	}
	s.KernelLog = kernelLogAt(
		kline{10 * time.Minute, 6, "TCP: request_sock_TCP: Possible SYN flooding on port 0.0.0.0:443. Sending cookies.", 0},
		kline{5 * time.Minute, 6, "neighbour: arp_cache: neighbor table overflow!", 0},
		kline{90 * time.Minute, 6, "TCP: time wait bucket table overflow", 0},
		kline{time.Minute, 6, "TCP: time wait bucket table overflow (written by a program)", 1},
	)
	r = Run(Input{Cur: s}, Checks())
	f, _ := r.Find("kernel-log")
	want := `the kernel said "TCP: request_sock_TCP: Possible SYN flooding on port 0.0.0.0:443. Sending cookies." once; "neighbour: arp_cache: neighbor table overflow!" once in the last hour`
	if f.Severity != Warning || f.Title != want {
		t.Errorf("kernel-log %s %q\nwant %q", f.Severity, f.Title, want)
	}
	if v, _ := f.Evidence.Get("userspace_records"); v != uint64(1) {
		t.Errorf("userspace records = %v", v)
	}
	if len(f.Fix) != 3 {
		t.Errorf("fix = %q", f.Fix)
	}
	b, err := json.Marshal(f)
	if err != nil || !strings.Contains(string(b), `"kernel_messages":[{"kind":"syn-flood","last_hour":1,"count":1`) ||
		!strings.Contains(string(b), `"fields":{"port":443,"addr":"0.0.0.0","action":"cookies"}`) {
		t.Errorf("JSON %s %v", b, err)
	}
}

// TestKernelLogMetrics: the kernel's messages are performance data too,
// graded where they raise the finding, so an override of the numbers'
// thresholds does not silence what the kernel said.
func TestKernelLogMetrics(t *testing.T) {
	f, _ := Run(fixtureInput(t, "tcp-orphans"), Checks()).Find("tcp-orphans")
	pd := Perfdata(f.Metrics)
	for _, want := range []string{"'tcp-orphans_last_hour'=14;0;;0", "'out-of-socket-memory_last_hour'=0;0;;0", "'tcp_abort_on_memory'=1412c;;;0"} {
		if !strings.Contains(pd, want) {
			t.Errorf("perfdata lacks %s: %s", want, pd)
		}
	}
	w, _ := ParseRange("100000")
	g, err := WithOverrides(f, Overrides{Warn: map[string]Range{"orphans": w}})
	if err != nil || g.Severity != Warning {
		t.Errorf("orphans' warning raised past the count: %s %v, want the kernel's warning still", g.Severity, err)
	}
	c, _ := Run(fixtureInput(t, "kernel-said"), Checks()).Find("conntrack")
	if pd := Perfdata(c.Metrics); !strings.Contains(pd, "'conntrack-full_last_hour'=30;;0;0") || Grade(c.Metrics) != Critical {
		t.Errorf("conntrack perfdata %s grades %s", pd, Grade(c.Metrics))
	}
}
