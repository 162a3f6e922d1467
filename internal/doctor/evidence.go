package doctor

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/picket-guard/picket/internal/snapshot"
)

// Evidence is a finding's numbers in the order an administrator reads them.
// It marshals to one JSON object; each check's keys are a contract listed in
// docs/checks.md. Values are numbers, strings, bools, maps of counts, or
// Tables (slices of rows, which marshal as arrays of objects).
type Evidence []Field

// Field is one key of the evidence.
type Field struct {
	Key   string
	Value any
}

// Add appends a key.
func (e *Evidence) Add(key string, v any) { *e = append(*e, Field{key, v}) }

// Get returns the value of a key.
func (e Evidence) Get(key string) (any, bool) {
	for _, f := range e {
		if f.Key == key {
			return f.Value, true
		}
	}
	return nil, false
}

// MarshalJSON writes the fields as one object, in order.
func (e Evidence) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, f := range e {
		if i > 0 {
			b.WriteByte(',')
		}
		k, err := json.Marshal(f.Key)
		if err != nil {
			return nil, err
		}
		v, err := json.Marshal(f.Value)
		if t, ok := f.Value.(Table); ok && len(t.Cells()) == 0 {
			v, err = []byte("[]"), nil // an empty table is [], never null
		}
		if err != nil {
			return nil, fmt.Errorf("evidence %s: %w", f.Key, err)
		}
		b.Write(k)
		b.WriteByte(':')
		b.Write(v)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// UnmarshalJSON reads an object back, in order, with JSON's own types
// (float64 numbers, []any arrays): enough for tests and tools that read a
// report back.
func (e *Evidence) UnmarshalJSON(b []byte) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	t, err := dec.Token()
	if err != nil {
		return err
	}
	if d, ok := t.(json.Delim); !ok || d != '{' {
		return fmt.Errorf("evidence: want an object, got %v", t)
	}
	out := Evidence{}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return err
		}
		k, _ := t.(string)
		var v any
		if err := dec.Decode(&v); err != nil {
			return fmt.Errorf("evidence %s: %w", k, err)
		}
		out = append(out, Field{k, v})
	}
	*e = out
	return nil
}

// Table is evidence that reads best as rows: the human renderer prints it
// aligned (escaping every cell); JSON gets the rows as objects.
type Table interface {
	Columns() []string
	Cells() [][]string
}

func itoa[T ~int | ~int64 | ~uint32 | ~uint64](v T) string { return strconv.FormatInt(int64(v), 10) }

func ftoa(v float64) string { return strconv.FormatFloat(v, 'f', 1, 64) }

// HolderRow is one process holding sockets, counted by type.
type HolderRow struct {
	PID     int    `json:"pid"`
	User    string `json:"user"`
	UID     uint32 `json:"uid"`
	Comm    string `json:"comm"`
	TCP     int    `json:"tcp"`
	UDP     int    `json:"udp"`
	Unix    int    `json:"unix"`
	Raw     int    `json:"raw"`
	Netlink int    `json:"netlink"`
	Packet  int    `json:"packet"`
	Other   int    `json:"other"`
	NonTCP  int    `json:"non_tcp"`
	FDs     int    `json:"fds"`
	FDLimit int64  `json:"fd_limit"` // 0: not read
	// SharePercent is this holder's share of all non-TCP sockets.
	SharePercent float64 `json:"share_percent"`
}

// HolderRows is a table of socket holders.
type HolderRows []HolderRow

func (HolderRows) Columns() []string {
	return []string{"PID", "USER", "COMMAND", "NON-TCP", "UNIX", "UDP", "RAW", "NETLINK", "PACKET", "OTHER", "TCP", "FDS/LIMIT", "SHARE"}
}

func (r HolderRows) Cells() [][]string {
	out := make([][]string, len(r))
	for i, h := range r {
		out[i] = []string{itoa(h.PID), h.User, h.Comm, itoa(h.NonTCP), itoa(h.Unix), itoa(h.UDP), itoa(h.Raw),
			itoa(h.Netlink), itoa(h.Packet), itoa(h.Other), itoa(h.TCP), fdsText(h.FDs, h.FDLimit), ftoa(h.SharePercent) + "%"}
	}
	return out
}

func fdsText(fds int, limit int64) string {
	if fds < 0 {
		return "?"
	}
	if limit > 0 {
		return itoa(fds) + "/" + itoa(limit)
	}
	return itoa(fds)
}

func holderRow(h snapshot.Holder, totalNonTCP int) HolderRow {
	return HolderRow{
		PID: h.PID, User: h.User, UID: h.UID, Comm: h.Comm,
		TCP: h.TCP, UDP: h.UDP, Unix: h.Unix, Raw: h.Raw, Netlink: h.Netlink, Packet: h.Packet, Other: h.Other,
		NonTCP: h.NonTCP(), FDs: h.FDs, FDLimit: h.FDLimit,
		SharePercent: percent(float64(h.NonTCP()), float64(totalNonTCP)),
	}
}

// GroupRow is one user × command group: PIKT's `ps -eo user,comm | uniq -c`
// line, with where its processes came from.
type GroupRow struct {
	User         string  `json:"user"`
	UID          uint32  `json:"uid"`
	Comm         string  `json:"comm"`
	Count        int     `json:"count"`
	Threads      int     `json:"threads"`
	RSSBytes     uint64  `json:"rss_bytes"`
	SharePercent float64 `json:"share_percent"` // of all processes
	// CountDelta is the change over the interval; absent with one snapshot.
	CountDelta *int `json:"count_delta,omitempty"`
	// StartedLastMinute counts the group's processes younger than a minute
	// at the snapshot's time: a storm in progress rather than a big pool.
	StartedLastMinute int `json:"started_last_minute"`
	// ParentPID is the parent of most of the group (0 when none stands
	// out): the service whose limit to lower.
	ParentPID   int    `json:"parent_pid"`
	ParentComm  string `json:"parent_comm"`
	FromParent  int    `json:"from_parent"`
	NprocLimit  int64  `json:"nproc_limit"` // the user's RLIMIT_NPROC: -1 unlimited, 0 unknown
	UserThreads int    `json:"user_threads"`
	// Unit is the systemd unit most of the group runs in (absent when its
	// cgroups name none): the unit whose TasksMax= to lower.
	Unit string `json:"unit,omitempty"`
}

// GroupRows is a table of user × command groups.
type GroupRows []GroupRow

func (GroupRows) Columns() []string {
	return []string{"COUNT", "Δ", "NEW<1m", "THREADS", "RSS", "SHARE", "USER", "COMMAND", "PARENT"}
}

func (r GroupRows) Cells() [][]string {
	out := make([][]string, len(r))
	for i, g := range r {
		d := "-"
		if g.CountDelta != nil {
			d = fmt.Sprintf("%+d", *g.CountDelta)
		}
		parent := "-"
		if g.ParentPID > 0 {
			parent = fmt.Sprintf("%d %s (%d of them)", g.ParentPID, g.ParentComm, g.FromParent)
		}
		out[i] = []string{itoa(g.Count), d, itoa(g.StartedLastMinute), itoa(g.Threads), snapshot.HumanBytes(g.RSSBytes),
			ftoa(g.SharePercent) + "%", g.User, g.Comm, parent}
	}
	return out
}

// GrowthRow is a user × command group's memory, and its growth over the
// interval (absent with one snapshot).
type GrowthRow struct {
	User          string `json:"user"`
	UID           uint32 `json:"uid"`
	Comm          string `json:"comm"`
	Count         int    `json:"count"`
	CountDelta    *int   `json:"count_delta,omitempty"`
	RSSBytes      uint64 `json:"rss_bytes"`
	RSSDeltaBytes *int64 `json:"rss_delta_bytes,omitempty"`
	AvgRSSBytes   uint64 `json:"avg_rss_bytes"`
	ParentPID     int    `json:"parent_pid"`
}

// GrowthRows is a table of groups by memory.
type GrowthRows []GrowthRow

func (GrowthRows) Columns() []string {
	return []string{"RSS", "ΔRSS", "COUNT", "Δ", "AVG RSS", "USER", "COMMAND", "PARENT"}
}

func (r GrowthRows) Cells() [][]string {
	out := make([][]string, len(r))
	for i, g := range r {
		d, dc := "-", "-"
		if g.RSSDeltaBytes != nil {
			d = signedBytes(*g.RSSDeltaBytes)
		}
		if g.CountDelta != nil {
			dc = fmt.Sprintf("%+d", *g.CountDelta)
		}
		parent := "-"
		if g.ParentPID > 0 {
			parent = itoa(g.ParentPID)
		}
		out[i] = []string{snapshot.HumanBytes(g.RSSBytes), d, itoa(g.Count), dc,
			snapshot.HumanBytes(g.AvgRSSBytes), g.User, g.Comm, parent}
	}
	return out
}

// signedBytes prints a byte delta with its sign.
func signedBytes(n int64) string {
	if n < 0 {
		return "-" + snapshot.HumanBytes(uint64(-n))
	}
	return "+" + snapshot.HumanBytes(uint64(n))
}

// plural picks the noun's form for n.
func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// BeancounterRow is one /proc/user_beancounters row that needs attention.
type BeancounterRow struct {
	UID      string `json:"uid"`
	Resource string `json:"resource"`
	Held     uint64 `json:"held"`
	MaxHeld  uint64 `json:"maxheld"`
	Barrier  uint64 `json:"barrier"`
	Limit    uint64 `json:"limit"`
	Failcnt  uint64 `json:"failcnt"`
	// FailcntIncrease is failcnt's growth over the interval: refusals
	// happening now, not 100 days ago. Absent with one snapshot.
	FailcntIncrease  *uint64 `json:"failcnt_increase,omitempty"`
	PercentOfBarrier float64 `json:"percent_of_barrier"`
}

// BeancounterRows is a table of beancounter rows.
type BeancounterRows []BeancounterRow

func (BeancounterRows) Columns() []string {
	return []string{"CT", "RESOURCE", "HELD", "MAXHELD", "BARRIER", "LIMIT", "FAILCNT", "+FAILCNT", "%BARRIER"}
}

func (r BeancounterRows) Cells() [][]string {
	out := make([][]string, len(r))
	for i, b := range r {
		inc := "-"
		if b.FailcntIncrease != nil {
			inc = itoa(*b.FailcntIncrease)
		}
		out[i] = []string{b.UID, b.Resource, itoa(b.Held), itoa(b.MaxHeld), itoa(b.Barrier), itoa(b.Limit),
			itoa(b.Failcnt), inc, ftoa(b.PercentOfBarrier) + "%"}
	}
	return out
}

// FDRow is a process's open files against its own RLIMIT_NOFILE.
type FDRow struct {
	PID     int     `json:"pid"`
	User    string  `json:"user"`
	UID     uint32  `json:"uid"`
	Comm    string  `json:"comm"`
	FDs     int     `json:"fds"`
	FDLimit int64   `json:"fd_limit"`
	Percent float64 `json:"percent"`
}

// FDRows is a table of processes by open files.
type FDRows []FDRow

func (FDRows) Columns() []string {
	return []string{"PID", "USER", "COMMAND", "FDS", "LIMIT", "USED"}
}

func (r FDRows) Cells() [][]string {
	out := make([][]string, len(r))
	for i, p := range r {
		lim := "?"
		if p.FDLimit > 0 {
			lim = itoa(p.FDLimit)
		}
		out[i] = []string{itoa(p.PID), p.User, p.Comm, itoa(p.FDs), lim, ftoa(p.Percent) + "%"}
	}
	return out
}

// UserRow is a user's tasks against its RLIMIT_NPROC.
type UserRow struct {
	User       string  `json:"user"`
	UID        uint32  `json:"uid"`
	Processes  int     `json:"processes"`
	Threads    int     `json:"threads"`
	NprocLimit int64   `json:"nproc_limit"` // -1 unlimited, 0 unknown
	Percent    float64 `json:"percent"`
}

// UserRows is a table of users.
type UserRows []UserRow

func (UserRows) Columns() []string {
	return []string{"USER", "UID", "PROCESSES", "THREADS", "NPROC LIMIT", "USED"}
}

func (r UserRows) Cells() [][]string {
	out := make([][]string, len(r))
	for i, u := range r {
		lim, used := "?", "-"
		switch {
		case u.NprocLimit < 0:
			lim = "unlimited"
		case u.NprocLimit > 0:
			lim, used = itoa(u.NprocLimit), ftoa(u.Percent)+"%"
		}
		out[i] = []string{u.User, itoa(u.UID), itoa(u.Processes), itoa(u.Threads), lim, used}
	}
	return out
}

// HolderGroupRow is the sockets of one user × command group together: ten
// smtpd workers with 8 unix sockets each read as one line of 80, which is
// what lowering the service's process limit changes.
type HolderGroupRow struct {
	User      string `json:"user"`
	UID       uint32 `json:"uid"`
	Comm      string `json:"comm"`
	Processes int    `json:"processes"`
	NonTCP    int    `json:"non_tcp"`
	Unix      int    `json:"unix"`
	UDP       int    `json:"udp"`
	TCP       int    `json:"tcp"`
	Unit      string `json:"unit,omitempty"` // the systemd unit most of them run in
}

// HolderGroupRows is a table of socket-holding groups.
type HolderGroupRows []HolderGroupRow

func (HolderGroupRows) Columns() []string {
	return []string{"PROCESSES", "NON-TCP", "UNIX", "UDP", "TCP", "USER", "COMMAND"}
}

func (r HolderGroupRows) Cells() [][]string {
	out := make([][]string, len(r))
	for i, g := range r {
		out[i] = []string{itoa(g.Processes), itoa(g.NonTCP), itoa(g.Unix), itoa(g.UDP), itoa(g.TCP), g.User, g.Comm}
	}
	return out
}
