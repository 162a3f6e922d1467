package snapshot

import "time"

// KernelLog is what the kernel said in its own log (/dev/kmsg), sorted into
// the exhaustions it proves: the orphan and TCP memory resets, a full
// conntrack table, file-max, OOM kills, the pids controller's refusals. The
// kernel announces most limits only there, once or rate-limited (the pids
// controller once per cgroup, file-max only past its last peak), so a
// message is kept even after the numbers have recovered.
//
// Only records of the kernel facility count. Anything written to /dev/kmsg
// from userspace gets a user facility from the kernel (devkmsg_write() in
// kernel/printk/printk.c) and is kept apart in User: shown, never proof.
type KernelLog struct {
	// Source is the device or file read ("/dev/kmsg").
	Source string `json:"source"`
	// Mode is "backlog" (the buffer read once, by picket doctor and
	// picket snapshot) or "follow" (picket run, reading as the kernel
	// writes).
	Mode string `json:"mode"`
	// Available is false when the log could not be read; Error says why
	// (reading /dev/kmsg needs root or CAP_SYSLOG when
	// kernel.dmesg_restrict is 1).
	Available bool   `json:"available"`
	Error     string `json:"error,omitempty"`
	// BootID is /proc/sys/kernel/random/boot_id: sequence numbers start
	// again at every boot.
	BootID string `json:"boot_id,omitempty"`
	// NextSeq is the sequence number after the last record read.
	NextSeq uint64 `json:"next_seq"`
	// ResumedSeq is where picket run took up the log after a restart:
	// messages before it were read, counted and reported by an earlier
	// run. 0 when this run read the buffer from its start.
	ResumedSeq uint64 `json:"resumed_seq,omitempty"`
	// Records counts the kernel-facility records read.
	Records uint64 `json:"records"`
	// Lost counts records the kernel overwrote before picket read them:
	// those older than the buffer's oldest at the first read, and every
	// gap since (read(2) fails with EPIPE and skips ahead).
	Lost uint64 `json:"lost"`
	// Malformed counts records that did not parse; TooLong those larger
	// than picket's read buffer (the kernel skips them with EINVAL).
	Malformed uint64 `json:"malformed"`
	TooLong   uint64 `json:"too_long"`
	// Unknown counts kernel records no catalogue entry matches: only
	// counted, never kept. UnknownErrors is those of level err or worse.
	Unknown       uint64 `json:"unknown"`
	UnknownErrors uint64 `json:"unknown_errors"`
	// Kinds has one entry per catalogue kind, in catalogue order, seen or
	// not.
	Kinds []KernelKind `json:"kinds"`
	// User is records written from userspace (any facility but kern).
	User KernelUser `json:"user"`
}

// Kind returns the entry for a kind, nil if there is none.
func (l *KernelLog) Kind(kind string) *KernelKind {
	if l == nil {
		return nil
	}
	for i := range l.Kinds {
		if l.Kinds[i].Kind == kind {
			return &l.Kinds[i]
		}
	}
	return nil
}

// KernelKind is one kind of kernel message and what was seen of it.
type KernelKind struct {
	Kind string `json:"kind"`
	// Findings are the picket doctor finding ids the message is evidence
	// for.
	Findings []string `json:"findings"`
	// Source is the kernel function that prints it.
	Source string `json:"source"`
	// Count is the messages since boot, as far as the buffer still held
	// them when picket first read it (see KernelLog.Lost); LastHour those
	// of the last hour before the snapshot.
	Count    uint64    `json:"count"`
	LastHour int       `json:"last_hour"`
	First    time.Time `json:"first,omitzero"`
	Last     time.Time `json:"last,omitzero"`
	// Message is the last one, as the kernel wrote it to /dev/kmsg (bytes
	// outside printable ASCII as \xNN); Fields are parsed from it.
	Message string       `json:"message,omitempty"`
	Fields  KernelFields `json:"fields"`
	// Recent is the last few messages, oldest first.
	Recent []KernelMessage `json:"recent"`
}

// KernelUser is what userspace wrote to the kernel's log.
type KernelUser struct {
	Count  uint64          `json:"count"`
	Recent []KernelMessage `json:"recent"`
}

// KernelMessage is one record of the kernel's log.
type KernelMessage struct {
	Seq  uint64    `json:"seq"`
	Time time.Time `json:"time"`
	// Facility is 0 for the kernel; Level is the syslog level, 0 emerg to
	// 7 debug.
	Facility int    `json:"facility"`
	Level    int    `json:"level"`
	Kind     string `json:"kind,omitempty"`
	// Text is the message as the kernel wrote it to /dev/kmsg, bytes
	// outside printable ASCII escaped as \xNN (cut at 512 bytes).
	Text string `json:"text"`
	// Subsystem and Device are the record's SUBSYSTEM= and DEVICE=
	// continuation lines (messages from dev_printk()).
	Subsystem string       `json:"subsystem,omitempty"`
	Device    string       `json:"device,omitempty"`
	Fields    KernelFields `json:"fields"`
}

// KernelFields are the values a catalogue entry parses out of a message.
// Names (Comm, Cgroup) are decoded from the kernel's \xNN escapes: they are
// what a process or a user chose, and every output escapes them.
type KernelFields struct {
	// PID, Comm and UID name a process: the OOM victim, the hung task,
	// the task whose allocation failed.
	PID  int     `json:"pid,omitempty"`
	Comm string  `json:"comm,omitempty"`
	UID  *uint32 `json:"uid,omitempty"`
	// Cgroup is the OOM victim's memory cgroup (task_memcg) or the cgroup
	// the pids controller refused a fork in.
	Cgroup string `json:"cgroup,omitempty"`
	// OOMCgroup is the memory cgroup whose limit was hit (oom_memcg), and
	// Constraint the OOM killer's (CONSTRAINT_NONE for the whole host,
	// CONSTRAINT_MEMCG for a cgroup's limit).
	OOMCgroup  string `json:"oom_cgroup,omitempty"`
	Constraint string `json:"constraint,omitempty"`
	// Memcg is set when a memory cgroup's limit, not the host, ran out.
	Memcg bool `json:"memcg,omitempty"`
	// RSSKB is the OOM victim's anon + file + shmem RSS in KiB.
	RSSKB uint64 `json:"rss_kb,omitempty"`
	// Port and Addr are the listener of a SYN flood; Action is "cookies"
	// or "drop".
	Port   int    `json:"port,omitempty"`
	Addr   string `json:"addr,omitempty"`
	Action string `json:"action,omitempty"`
	// Order is a failed page allocation's order (2^order pages).
	Order *int `json:"order,omitempty"`
	// Seconds is how long a hung task has been blocked.
	Seconds int `json:"seconds,omitempty"`
	// Limit is fs.file-max when the kernel said it was reached.
	Limit int64 `json:"limit,omitempty"`
	// Table is the neighbour table that overflowed (arp_cache, ndisc_cache).
	Table string `json:"table,omitempty"`
}
