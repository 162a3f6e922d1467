package snapshot

// Netstat is the TcpExt counters of /proc/net/netstat that back the
// kernel's messages: each counts, since boot, what a rate-limited log line
// says only now and then, and is still there when the log has rotated.
// Rates need two snapshots.
type Netstat struct {
	// AbortOnMemory is TCPAbortOnMemory: sockets tcp_out_of_resources()
	// (net/ipv4/tcp_timer.c) reset because tcp_check_oom() found too many
	// orphans or TCP memory above tcp_mem[2] — "Out of socket memory"
	// counted, even where the log line was rate-limited away.
	AbortOnMemory uint64 `json:"tcp_abort_on_memory"`
	// AbortOnTimeout is TCPAbortOnTimeout: connections dropped when
	// retransmissions, keepalives or zero-window probes ran out.
	AbortOnTimeout uint64 `json:"tcp_abort_on_timeout"`
	// ListenOverflows is ListenOverflows: SYNs or ACKs dropped because a
	// listener's accept queue was full; ListenDrops (ListenDrops) counts
	// those and every other drop at a listener.
	ListenOverflows uint64 `json:"listen_overflows"`
	ListenDrops     uint64 `json:"listen_drops"`
	// ReqQFullDoCookies and ReqQFullDrop are TCPReqQFullDoCookies and
	// TCPReqQFullDrop: SYNs answered with a cookie, or dropped, because a
	// listener's SYN queue was full (tcp_syn_flood_action()).
	ReqQFullDoCookies uint64 `json:"tcp_req_q_full_do_cookies"`
	ReqQFullDrop      uint64 `json:"tcp_req_q_full_drop"`
	// TimeWaitOverflow is TCPTimeWaitOverflow: closing sockets that got
	// no TIME_WAIT bucket (tcp_max_tw_buckets reached).
	TimeWaitOverflow uint64 `json:"tcp_time_wait_overflow"`
	// MemoryPressures is TCPMemoryPressures: times TCP entered memory
	// pressure (tcp_mem[1]).
	MemoryPressures uint64 `json:"tcp_memory_pressures"`
}

// ConntrackStat is /proc/net/stat/nf_conntrack summed over CPUs: what
// netfilter did when its table was full.
type ConntrackStat struct {
	// Drop counts packets dropped because no entry could be made (the
	// table full and nothing to evict: "table full, dropping packet");
	// EarlyDrop entries evicted to make room; InsertFailed entries that
	// could not be inserted (a clash).
	Drop         uint64 `json:"drop"`
	EarlyDrop    uint64 `json:"early_drop"`
	InsertFailed uint64 `json:"insert_failed"`
	// CPUs is how many per-CPU lines were summed.
	CPUs int `json:"cpus"`
}
