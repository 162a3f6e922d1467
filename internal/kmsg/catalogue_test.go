package kmsg

import (
	"reflect"
	"strings"
	"testing"

	"github.com/picket-guard/picket/internal/snapshot"
)

func u32(v uint32) *uint32 { return &v }
func ip(v int) *int        { return &v }

// Every entry's example, as the kernel prints it, is matched by that entry
// and names the kernel source it comes from.
func TestCatalogueExamples(t *testing.T) {
	for _, e := range Catalogue() {
		if e.Source == "" || e.What == "" || e.Example == "" || e.anchor == "" {
			t.Errorf("%s: source, what, example and anchor are all needed", e.Kind)
		}
		if !strings.Contains(e.Source, ".c ") {
			t.Errorf("%s: source %q does not name a kernel file and function", e.Kind, e.Source)
		}
		got, _, ok := Match([]byte(e.Example))
		if !ok || got.Kind != e.Kind || got.Example != e.Example {
			t.Errorf("%s: example %q matched %+v", e.Kind, e.Example, got)
		}
	}
}

func TestCatalogueFields(t *testing.T) {
	for _, tc := range []struct {
		text string
		kind string
		want snapshot.KernelFields
	}{
		{"TCP: too many orphaned sockets", KindTCPOrphans, snapshot.KernelFields{}},
		{"too many orphaned sockets", KindTCPOrphans, snapshot.KernelFields{}},
		{"TCP: out of memory -- consider tuning tcp_mem", KindTCPMemory, snapshot.KernelFields{}},
		{"Out of socket memory", KindSocketMemory, snapshot.KernelFields{}},
		{"nf_conntrack: table full, dropping packet", KindConntrackFull, snapshot.KernelFields{}},
		{"nf_conntrack: nf_conntrack: table full, dropping packet", KindConntrackFull, snapshot.KernelFields{}},
		{"ip_conntrack: table full, dropping packet.", KindConntrackFull, snapshot.KernelFields{}},
		{"VFS: file-max limit 9223372036854775807 reached", "", snapshot.KernelFields{}}, // past what we trust
		{"VFS: file-max limit 65536 reached", KindFileMax, snapshot.KernelFields{Limit: 65536}},
		{"Memory cgroup out of memory: Killed process 22741 (python3) total-vm:26844kB, anon-rss:16128kB, file-rss:6648kB, shmem-rss:0kB, UID:0 pgtables:88kB oom_score_adj:0",
			KindOOMKill, snapshot.KernelFields{PID: 22741, Comm: "python3", UID: u32(0), Memcg: true, RSSKB: 16128 + 6648}},
		{"Out of memory: Killed process 3120 (my sql) total-vm:10kB, anon-rss:1kB, file-rss:2kB, shmem-rss:3kB, UID:111 pgtables:4kB oom_score_adj:0",
			KindOOMKill, snapshot.KernelFields{PID: 3120, Comm: "my sql", UID: u32(111), RSSKB: 6}},
		// A comm that imitates the kernel's own fields: the last ") total-vm:" ends it.
		{`Out of memory: Killed process 7 (a) total-vm:1kB) total-vm:10kB, anon-rss:1kB, file-rss:0kB, shmem-rss:0kB, UID:5 pgtables:4kB oom_score_adj:0`,
			KindOOMKill, snapshot.KernelFields{PID: 7, Comm: "a) total-vm:1kB", UID: u32(5), RSSKB: 1}},
		{"Killed process 1234 (java) total-vm:4194304kB, anon-rss:3145728kB, file-rss:0kB", KindOOMKill,
			snapshot.KernelFields{PID: 1234, Comm: "java", RSSKB: 3145728}},
		{"Killed process 99 (old)", KindOOMKill, snapshot.KernelFields{PID: 99, Comm: "old"}},
		{`Out of memory: Killed process 8 (\x1b[2Jx) total-vm:1kB, anon-rss:0kB, file-rss:0kB, shmem-rss:0kB, UID:0 pgtables:4kB oom_score_adj:0`,
			KindOOMKill, snapshot.KernelFields{PID: 8, Comm: "\x1b[2Jx", UID: u32(0)}},
		{"oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg=/app,task_memcg=/app/web,task=python3,pid=22741,uid=1000",
			KindOOMKill, snapshot.KernelFields{PID: 22741, Comm: "python3", UID: u32(1000), Cgroup: "/app/web", OOMCgroup: "/app", Constraint: "CONSTRAINT_MEMCG", Memcg: true}},
		{"oom-kill:constraint=CONSTRAINT_NONE,nodemask=(null),cpuset=/,mems_allowed=0,global_oom,task_memcg=/a,b=c,task=x,pid=1,uid=0",
			KindOOMKill, snapshot.KernelFields{PID: 1, Comm: "x", UID: u32(0), Cgroup: "/a,b=c", Constraint: "CONSTRAINT_NONE"}},
		{"cgroup: fork rejected by pids controller in /system.slice/apache2.service", KindForkRejected,
			snapshot.KernelFields{Cgroup: "/system.slice/apache2.service"}},
		{`cgroup: fork rejected by pids controller in /x\x0ay`, KindForkRejected, snapshot.KernelFields{Cgroup: "/x\ny"}},
		{"TCP: request_sock_TCP: Possible SYN flooding on port 0.0.0.0:80. Sending cookies.", KindSYNFlood,
			snapshot.KernelFields{Port: 80, Addr: "0.0.0.0", Action: "cookies"}},
		{"TCP: request_sock_TCP: Possible SYN flooding on port 127.0.0.1:23456. Sending cookies.", KindSYNFlood,
			snapshot.KernelFields{Port: 23456, Addr: "127.0.0.1", Action: "cookies"}},
		{"TCP: request_sock_subflow_v4: Possible SYN flooding on port [::]:20002. Dropping request.", KindSYNFlood,
			snapshot.KernelFields{Port: 20002, Addr: "::", Action: "drop"}},
		{"TCP: request_sock_TCPv6: Possible SYN flooding on port 34391. Dropping request.  Check SNMP counters.", KindSYNFlood,
			snapshot.KernelFields{Port: 34391, Action: "drop"}},
		{"possible SYN flooding on port 4671. Sending cookies.", KindSYNFlood, snapshot.KernelFields{Port: 4671, Action: "cookies"}},
		{"TCP: Possible SYN flooding on port 99999. Sending cookies.", "", snapshot.KernelFields{}},
		{"kworker/1:2: page allocation failure: order:4, mode:0x40cc0(GFP_KERNEL|__GFP_COMP)", KindPageAllocFail,
			snapshot.KernelFields{Comm: "kworker/1:2", Order: ip(4)}},
		{"swapper/0: page allocation failure: order:0, mode:0x20", KindPageAllocFail, snapshot.KernelFields{Comm: "swapper/0", Order: ip(0)}},
		{"INFO: task mysqld:3120 blocked for more than 122 seconds.", KindHungTask, snapshot.KernelFields{Comm: "mysqld", PID: 3120, Seconds: 122}},
		{"INFO: task kworker/u4:1:88 blocked for more than 120 seconds. [Warning #2]", KindHungTask,
			snapshot.KernelFields{Comm: "kworker/u4:1", PID: 88, Seconds: 120}},
		{"neighbour: arp_cache: neighbor table overflow!", KindNeighOverflow, snapshot.KernelFields{Table: "arp_cache"}},
		{"ndisc_cache: neighbor table overflow!", KindNeighOverflow, snapshot.KernelFields{Table: "ndisc_cache"}},
		{"Neighbour table overflow.", KindNeighOverflow, snapshot.KernelFields{}},
		{"TCP: time wait bucket table overflow", KindTimeWaitBucket, snapshot.KernelFields{}},

		// Not the kernel saying it: the words inside another message.
		{"audit: type=1400 apparmor=\"DENIED\" name=\"/tmp/TCP: too many orphaned sockets\"", "", snapshot.KernelFields{}},
		{"EXT4-fs error: file nf_conntrack: table full, dropping packet", "", snapshot.KernelFields{}},
		{"myapp: Killed process 12 (x) total-vm:1kB", "", snapshot.KernelFields{}},
		{"audit: type=1300 exe=\"/x\" comm=\"a b\" Possible SYN flooding on port 80. Sending cookies.", "", snapshot.KernelFields{}},
		{"audit: type=1300 exe=\"/usr/bin/very-long-name-of-a-program-here\" comm=\"x\": page allocation failure: order:1", "", snapshot.KernelFields{}},
		{"Out of memory: Kill process 1234 (java) score 900 or sacrifice child", "", snapshot.KernelFields{}},
		{"oom_reaper: reaped process 3120 (mysqld), now anon-rss:0kB", "", snapshot.KernelFields{}},
		{"cgroup: fork rejected by pids controller in ", "", snapshot.KernelFields{}},
		{"INFO: task x blocked for more than 5 seconds.", "", snapshot.KernelFields{}},
		{"oom-kill:constraint=CONSTRAINT_NONE,task=x,pid=1,uid=z", "", snapshot.KernelFields{}},
	} {
		e, f, ok := Match([]byte(tc.text))
		kind := ""
		if ok {
			kind = e.Kind
		}
		if kind != tc.kind {
			t.Errorf("%q: kind %q, want %q", tc.text, kind, tc.kind)
			continue
		}
		if !reflect.DeepEqual(f, tc.want) {
			t.Errorf("%q: fields\n%+v, want\n%+v", tc.text, f, tc.want)
		}
	}
}

func TestKinds(t *testing.T) {
	k := Kinds()
	seen := map[string]bool{}
	for _, x := range k {
		if seen[x] {
			t.Errorf("kind %s listed twice", x)
		}
		seen[x] = true
	}
	if len(k) != 12 || k[0] != KindTCPOrphans || !seen[KindOOMKill] {
		t.Errorf("Kinds() = %v", k)
	}
}
