package kmsg

import (
	"bytes"

	"github.com/picket-guard/picket/internal/proctext"
	"github.com/picket-guard/picket/internal/snapshot"
)

// The kinds of message the catalogue knows. They are a contract: the
// snapshot's kernel_log, the kernel_log rules table and
// picket_kernel_messages_total{kind} use them.
const (
	KindTCPOrphans     = "tcp-orphans"
	KindTCPMemory      = "tcp-memory"
	KindSocketMemory   = "out-of-socket-memory"
	KindConntrackFull  = "conntrack-full"
	KindFileMax        = "file-max"
	KindOOMKill        = "oom-kill"
	KindForkRejected   = "fork-rejected"
	KindSYNFlood       = "syn-flood"
	KindPageAllocFail  = "page-alloc-failure"
	KindHungTask       = "hung-task"
	KindNeighOverflow  = "neighbour-overflow"
	KindTimeWaitBucket = "tw-bucket-overflow"
)

// The doctor finding ids messages are tied to.
const (
	findTCPOrphans   = "tcp-orphans"
	findTCPMemory    = "tcp-memory"
	findConntrack    = "conntrack"
	findFDExhaustion = "fd-exhaustion"
	findThrashing    = "memory-thrashing"
	findProcessStorm = "process-storm"
	findCgroupLimits = "cgroup-limits"
)

// Entry is one message the kernel prints when a limit bites.
type Entry struct {
	Kind string
	// Findings are the doctor finding ids the message is evidence for.
	Findings []string
	// Source is the kernel file and function that prints the message.
	Source string
	// What says in an administrator's words what the message means.
	What string
	// Example is the message as the kernel prints it (tests parse every
	// example).
	Example string
	// anchor is a substring every such message holds: the cheap test
	// before parse.
	anchor string
	// parse confirms the match and fills the fields; text is still
	// escaped as the kernel wrote it.
	parse func(text []byte, f *snapshot.KernelFields) bool
	// context marks a line that only details the message of the same kind
	// that follows it (the OOM killer's one-line summary before "Killed
	// process"): its fields join that message, it is not counted alone.
	context bool
}

// catalogue is every message picket knows, in the order they are shown.
// It is read-only.
var catalogue = []Entry{
	{
		Kind: KindTCPOrphans, Findings: []string{findTCPOrphans},
		Source:  "net/ipv4/tcp.c tcp_check_oom(), from tcp_out_of_resources() in net/ipv4/tcp_timer.c",
		What:    "a closed socket was reset because orphans << shift exceeded tcp_max_orphans",
		Example: "TCP: too many orphaned sockets",
		anchor:  "too many orphaned sockets",
		parse:   exactly("TCP: too many orphaned sockets", "too many orphaned sockets"),
	},
	{
		Kind: KindTCPMemory, Findings: []string{findTCPMemory},
		Source:  "net/ipv4/tcp.c tcp_check_oom(), from tcp_out_of_resources() in net/ipv4/tcp_timer.c",
		What:    "a socket was reset because TCP memory was above tcp_mem[2]",
		Example: "TCP: out of memory -- consider tuning tcp_mem",
		anchor:  "out of memory -- consider tuning tcp_mem",
		parse:   exactly("TCP: out of memory -- consider tuning tcp_mem", "out of memory -- consider tuning tcp_mem"),
	},
	{
		// Kernels before 3.7 said the same for both causes; sockstat
		// tells them apart (orphans against tcp_max_orphans, pages
		// against tcp_mem[2]).
		Kind: KindSocketMemory, Findings: []string{findTCPOrphans, findTCPMemory},
		Source:  "net/ipv4/tcp_timer.c tcp_out_of_resources() (kernels before 3.7)",
		What:    "a socket was reset for too many orphans or TCP memory above tcp_mem[2] (old kernels do not say which)",
		Example: "Out of socket memory",
		anchor:  "Out of socket memory",
		parse:   exactly("Out of socket memory", "TCP: Out of socket memory"),
	},
	{
		Kind: KindConntrackFull, Findings: []string{findConntrack},
		Source:  "net/netfilter/nf_conntrack_core.c __nf_conntrack_alloc()",
		What:    "a new connection's packet was dropped: the conntrack table was at nf_conntrack_max and nothing could be evicted",
		Example: "nf_conntrack: nf_conntrack: table full, dropping packet",
		anchor:  "table full, dropping packet",
		parse:   parseConntrackFull,
	},
	{
		Kind: KindFileMax, Findings: []string{findFDExhaustion},
		Source:  "fs/file_table.c alloc_empty_file()",
		What:    "an open() failed with ENFILE: the host's file handles reached fs.file-max (logged only past the last peak)",
		Example: "VFS: file-max limit 65536 reached",
		anchor:  "file-max limit ",
		parse:   parseFileMax,
	},
	{
		Kind: KindOOMKill, Findings: []string{findThrashing, findCgroupLimits},
		Source:  "mm/oom_kill.c dump_oom_victim()",
		What:    "the OOM killer's summary of a kill: constraint, the cgroup whose limit was hit and the victim's cgroup",
		Example: "oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg=/app,task_memcg=/app,task=python3,pid=22741,uid=0",
		anchor:  "oom-kill:constraint=",
		parse:   parseOOMContext,
		context: true,
	},
	{
		Kind: KindOOMKill, Findings: []string{findThrashing, findCgroupLimits},
		Source:  "mm/oom_kill.c __oom_kill_process()",
		What:    "the OOM killer killed a process: the host's memory, or a memory cgroup's limit, ran out",
		Example: "Memory cgroup out of memory: Killed process 22741 (python3) total-vm:26844kB, anon-rss:16128kB, file-rss:6648kB, shmem-rss:0kB, UID:0 pgtables:88kB oom_score_adj:0",
		anchor:  "Killed process ",
		parse:   parseOOMKill,
	},
	{
		Kind: KindForkRejected, Findings: []string{findCgroupLimits, findProcessStorm},
		Source:  "kernel/cgroup/pids.c pids_event()",
		What:    "a fork failed with EAGAIN: the cgroup reached its pids.max (logged only the first time per cgroup)",
		Example: "cgroup: fork rejected by pids controller in /system.slice/apache2.service",
		anchor:  "fork rejected by pids controller in ",
		parse:   parseForkRejected,
	},
	{
		Kind:    KindSYNFlood,
		Source:  "net/ipv4/tcp_input.c tcp_syn_flood_action()",
		What:    "a listener's SYN queue overflowed: SYN cookies were sent or requests dropped (a flood, or a backlog too small for the load)",
		Example: "TCP: request_sock_TCP: Possible SYN flooding on port 0.0.0.0:80. Sending cookies.",
		anchor:  "ossible SYN flooding on port ",
		parse:   parseSYNFlood,
	},
	{
		Kind: KindPageAllocFail, Findings: []string{findThrashing},
		Source:  "mm/page_alloc.c warn_alloc()",
		What:    "a kernel memory allocation failed (high orders: fragmentation; order 0: memory exhausted)",
		Example: "kworker/1:2: page allocation failure: order:4, mode:0x40cc0(GFP_KERNEL|__GFP_COMP), nodemask=(null),cpuset=/,mems_allowed=0",
		anchor:  ": page allocation failure: order:",
		parse:   parsePageAllocFail,
	},
	{
		// Tasks stuck for minutes in D state are what heavy swapping
		// looks like from inside; hung I/O is the other cause.
		Kind: KindHungTask, Findings: []string{findThrashing},
		Source:  "kernel/hung_task.c check_hung_task()",
		What:    "a task was blocked in uninterruptible sleep (D) longer than kernel.hung_task_timeout_secs",
		Example: "INFO: task mysqld:3120 blocked for more than 122 seconds.",
		anchor:  " blocked for more than ",
		parse:   parseHungTask,
	},
	{
		Kind:    KindNeighOverflow,
		Source:  "net/core/neighbour.c neigh_alloc()",
		What:    "the neighbour (ARP/NDP) table was at gc_thresh3: new neighbours could not be resolved",
		Example: "neighbour: arp_cache: neighbor table overflow!",
		anchor:  "eighbo", // "neighbor table overflow!", old kernels' "Neighbour table overflow."
		parse:   parseNeighOverflow,
	},
	{
		// Recent kernels no longer log this and count it only, as
		// TcpExt TCPTimeWaitOverflow in /proc/net/netstat.
		Kind:    KindTimeWaitBucket,
		Source:  "net/ipv4/tcp_minisocks.c tcp_time_wait() (older kernels)",
		What:    "a closing socket skipped TIME_WAIT: tcp_max_tw_buckets was reached",
		Example: "TCP: time wait bucket table overflow",
		anchor:  "time wait bucket table overflow",
		parse:   exactly("TCP: time wait bucket table overflow", "time wait bucket table overflow"),
	},
}

// anchors are the entries' anchors as bytes, made once: matching a record
// allocates nothing.
var anchors = func() [][]byte {
	out := make([][]byte, len(catalogue))
	for i, e := range catalogue {
		out[i] = []byte(e.anchor)
	}
	return out
}()

// Catalogue returns the catalogue's entries (a copy), in order.
func Catalogue() []Entry { return append([]Entry(nil), catalogue...) }

// Kinds returns the catalogue's kinds, each once, in order.
func Kinds() []string {
	var out []string
	for _, e := range catalogue {
		if len(out) == 0 || out[len(out)-1] != e.Kind {
			out = append(out, e.Kind)
		}
	}
	return out
}

// Match finds the catalogue entry for a message (as the kernel wrote it,
// escaped) and parses its fields; ok is false for a message the catalogue
// does not know.
func Match(text []byte) (e *Entry, f snapshot.KernelFields, ok bool) {
	for i := range catalogue {
		e := &catalogue[i]
		if !bytes.Contains(text, anchors[i]) {
			continue
		}
		var f snapshot.KernelFields
		if e.parse(text, &f) {
			return e, f, true
		}
	}
	return nil, snapshot.KernelFields{}, false
}

// exactly matches messages that are one of the texts, give or take the
// trailing period or newline some kernels print. Every entry is anchored
// at the start of the message, where the kernel's own words are: a file
// name or a comm in the middle of another message (an audit record, say)
// must not count as the kernel saying it.
func exactly(texts ...string) func([]byte, *snapshot.KernelFields) bool {
	return func(t []byte, _ *snapshot.KernelFields) bool {
		t = bytes.TrimRight(t, ". ")
		for _, x := range texts {
			if string(t) == x {
				return true
			}
		}
		return false
	}
}

// "nf_conntrack: table full, dropping packet" with the module's name once
// or twice before it (pr_fmt adds it to a text that has it already), or
// ip_conntrack's on 2.6 kernels.
func parseConntrackFull(t []byte, _ *snapshot.KernelFields) bool {
	for _, p := range []string{"nf_conntrack: ", "ip_conntrack: "} {
		for i := 0; i < 2 && bytes.HasPrefix(t, []byte(p)); i++ {
			t = t[len(p):]
		}
	}
	return string(bytes.TrimRight(t, ". ")) == "table full, dropping packet"
}

// "VFS: file-max limit %lu reached"
func parseFileMax(t []byte, f *snapshot.KernelFields) bool {
	rest, ok := after(t, "VFS: file-max limit ")
	if !ok {
		return false
	}
	n, rest := leadingNumber(rest)
	if !bytes.HasPrefix(rest, []byte(" reached")) || n < 0 {
		return false
	}
	f.Limit = n
	return true
}

// "%s: Killed process %d (%s) total-vm:%lukB, anon-rss:%lukB,
// file-rss:%lukB, shmem-rss:%lukB, UID:%u pgtables:%lukB oom_score_adj:%hd"
// where the first %s is "Out of memory" or "Memory cgroup out of memory";
// kernels before 4.x printed fewer fields after the comm, and 2.6 kernels
// nothing after it.
func parseOOMKill(t []byte, f *snapshot.KernelFields) bool {
	i := bytes.Index(t, []byte("Killed process "))
	if i < 0 || i > 0 && !bytes.HasPrefix(t, []byte("Out of memory")) && !bytes.HasPrefix(t, []byte("Memory cgroup out of memory")) {
		return false
	}
	pid, rest := leadingNumber(t[i+len("Killed process "):])
	if pid <= 0 || !bytes.HasPrefix(rest, []byte(" (")) {
		return false
	}
	rest = rest[2:]
	// The comm may hold ") " itself; what follows the real one is the
	// kernel's own fields, so the last ") total-vm:" ends it.
	end := bytes.LastIndex(rest, []byte(") total-vm:"))
	if end < 0 {
		if len(rest) == 0 || rest[len(rest)-1] != ')' {
			return false
		}
		end = len(rest) - 1
	}
	f.PID, f.Comm = int(pid), Unescape(rest[:end])
	tail := rest[end:]
	f.Memcg = bytes.HasPrefix(t, []byte("Memory cgroup out of memory"))
	if v, ok := field(tail, " UID:"); ok {
		u := uint32(v)
		f.UID = &u
	}
	for _, k := range []string{"anon-rss:", "file-rss:", "shmem-rss:"} {
		if v, ok := field(tail, k); ok {
			f.RSSKB += uint64(v)
		}
	}
	return true
}

// "oom-kill:constraint=%s,nodemask=%*pbl[,cpuset=%s,mems_allowed=%*pbl]
// [,oom_memcg=PATH][,task_memcg=PATH],task=%s,pid=%d,uid=%d". Names are
// read from the right: the kernel's own fields close the line, and a comm
// or a cgroup path may hold commas.
func parseOOMContext(t []byte, f *snapshot.KernelFields) bool {
	rest, ok := after(t, "oom-kill:constraint=")
	if !ok {
		return false
	}
	if i := bytes.IndexByte(rest, ','); i > 0 {
		f.Constraint = string(rest[:i])
	}
	u := bytes.LastIndex(t, []byte(",uid="))
	if u < 0 {
		return false
	}
	uid, tail := leadingNumber(t[u+len(",uid="):])
	if uid < 0 || len(tail) != 0 {
		return false
	}
	p := bytes.LastIndex(t[:u], []byte(",pid="))
	if p < 0 {
		return false
	}
	pid, tail := leadingNumber(t[p+len(",pid=") : u])
	if pid <= 0 || len(tail) != 0 {
		return false
	}
	k := bytes.LastIndex(t[:p], []byte(",task="))
	if k < 0 {
		return false
	}
	uu := uint32(uid)
	f.PID, f.UID, f.Comm = int(pid), &uu, Unescape(t[k+len(",task="):p])
	head := t[:k]
	if m := bytes.LastIndex(head, []byte(",task_memcg=")); m >= 0 {
		f.Cgroup = Unescape(head[m+len(",task_memcg="):])
		head = head[:m]
	}
	if m := bytes.LastIndex(head, []byte(",oom_memcg=")); m >= 0 {
		f.OOMCgroup = Unescape(head[m+len(",oom_memcg="):])
	}
	f.Memcg = f.Constraint == "CONSTRAINT_MEMCG"
	return true
}

// "cgroup: fork rejected by pids controller in PATH": the forking task's
// cgroup, whose pids.max (or an ancestor's) was reached.
func parseForkRejected(t []byte, f *snapshot.KernelFields) bool {
	rest, ok := after(t, "cgroup: fork rejected by pids controller in ")
	if !ok || len(rest) == 0 {
		return false
	}
	f.Cgroup = Unescape(rest)
	return true
}

// "%s: Possible SYN flooding on port [%pI6c]:%u. %s." (and %pI4:%u),
// "%s" being "Sending cookies" or "Dropping request"; kernels before 5.10
// printed the port alone ("on port 80."), some with "  Check SNMP
// counters." after.
func parseSYNFlood(t []byte, f *snapshot.KernelFields) bool {
	i := bytes.Index(t, []byte("ossible SYN flooding on port "))
	if i < 1 || t[i-1] != 'P' && t[i-1] != 'p' || !protoPrefix(t[:i-1]) {
		return false
	}
	rest := t[i+len("ossible SYN flooding on port "):]
	end := bytes.Index(rest, []byte(". "))
	if end < 0 {
		if end = bytes.LastIndexByte(rest, '.'); end < 0 {
			end = len(rest)
		}
	}
	spec := rest[:end]
	if c := bytes.LastIndexByte(spec, ':'); c >= 0 {
		f.Addr = string(bytes.Trim(spec[:c], "[]"))
		spec = spec[c+1:]
	}
	port, tail := leadingNumber(spec)
	if port <= 0 || port > 65535 || len(tail) != 0 {
		return false
	}
	f.Port = int(port)
	switch {
	case bytes.Contains(rest[end:], []byte("Sending cookies")):
		f.Action = "cookies"
	case bytes.Contains(rest[end:], []byte("Dropping request")):
		f.Action = "drop"
	}
	return true
}

// protoPrefix says whether head is what the kernel puts before "Possible
// SYN flooding": nothing, or words each ending in ": " ("TCP: ",
// "request_sock_TCP: ").
func protoPrefix(head []byte) bool {
	for len(head) > 0 {
		i := bytes.Index(head, []byte(": "))
		if i <= 0 || bytes.IndexByte(head[:i], ' ') >= 0 {
			return false
		}
		head = head[i+2:]
	}
	return true
}

// "%s: page allocation failure: order:%u, mode:%#x(%pGg), nodemask=...",
// the %s being the allocating task's comm.
func parsePageAllocFail(t []byte, f *snapshot.KernelFields) bool {
	// The comm comes first: at most TASK_COMM_LEN-1 bytes, 4 each when
	// escaped. Further in, the text is some other message quoting it.
	i := bytes.Index(t, []byte(": page allocation failure: order:"))
	if i <= 0 || i > 4*15 {
		return false
	}
	order, _ := leadingNumber(t[i+len(": page allocation failure: order:"):])
	if order < 0 || order > 64 {
		return false
	}
	o := int(order)
	f.Comm, f.Order = Unescape(t[:i]), &o
	return true
}

// "INFO: task %s:%d blocked for more than %ld seconds."
func parseHungTask(t []byte, f *snapshot.KernelFields) bool {
	rest, ok := after(t, "INFO: task ")
	if !ok {
		return false
	}
	b := bytes.LastIndex(rest, []byte(" blocked for more than "))
	if b < 0 {
		return false
	}
	c := bytes.LastIndexByte(rest[:b], ':')
	if c < 0 {
		return false
	}
	pid, tail := leadingNumber(rest[c+1 : b])
	if pid <= 0 || len(tail) != 0 {
		return false
	}
	secs, _ := leadingNumber(rest[b+len(" blocked for more than "):])
	f.PID, f.Comm = int(pid), Unescape(rest[:c])
	if secs > 0 && secs < 1<<31 {
		f.Seconds = int(secs)
	}
	return true
}

// "neighbour: %s: neighbor table overflow!" (tbl->id: arp_cache,
// ndisc_cache); 2.6 kernels: "Neighbour table overflow."
func parseNeighOverflow(t []byte, f *snapshot.KernelFields) bool {
	if bytes.HasPrefix(t, []byte("Neighbour table overflow")) {
		return true
	}
	rest, ok := after(t, "neighbour: ")
	if !ok {
		rest = t // before pr_fmt was added
	}
	i := bytes.Index(rest, []byte(": neighbor table overflow!"))
	if i <= 0 || bytes.IndexByte(rest[:i], ' ') >= 0 {
		return false
	}
	f.Table = Unescape(rest[:i])
	return true
}

// after returns what follows prefix at the start of t.
func after(t []byte, prefix string) ([]byte, bool) {
	if !bytes.HasPrefix(t, []byte(prefix)) {
		return nil, false
	}
	return t[len(prefix):], true
}

// leadingNumber parses the decimal digits at the start of b: -1 when there
// are none or they overflow.
func leadingNumber(b []byte) (int64, []byte) {
	i := 0
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		i++
	}
	v, ok := proctext.Dec(b[:i])
	if !ok || v > 1<<62 {
		return -1, b
	}
	return int64(v), b[i:]
}

// field finds key in t and parses the number after it.
func field(t []byte, key string) (int64, bool) {
	i := bytes.Index(t, []byte(key))
	if i < 0 {
		return 0, false
	}
	v, _ := leadingNumber(t[i+len(key):])
	return v, v >= 0
}
