package act

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"golang.org/x/sys/unix"
)

// ThrottleSpec drops (mode drop) or rate-limits (mode rate: packets opening
// a connection beyond Rate are dropped) new connections to a local port for
// For, keeping established ones: the thrashing web server's `iptables -A INPUT -p tcp --dport
// 80 -j DROP`, made to end by itself. A TCP connection is new when conntrack
// says so and the packet is a bare SYN; for UDP, conntrack's word alone
// decides, so flows it did not track before the throttle count as new.
//
// The kernel ends it: the rule matches only while its set holds the port,
// and the set's element carries a timeout of For, so the throttle stops at
// its time even if picket is killed and never comes back.
//
// Port 22 (sshd) and picket's own HTTP port are refused unless Force is
// set: a throttle must not lock out the administrator who has to fix the
// box.
//
//	throttle: {port: 80, proto: tcp, mode: drop, rate: "20/second", for: 10m}
type ThrottleSpec struct {
	Port  int           `yaml:"port" json:"port"`
	Proto string        `yaml:"proto" json:"proto,omitempty"` // tcp (default) or udp
	Mode  string        `yaml:"mode" json:"mode,omitempty"`   // drop (default) or rate
	Rate  string        `yaml:"rate" json:"rate,omitempty"`   // N/second|minute|hour, for mode rate
	Burst int           `yaml:"burst" json:"burst,omitempty"` // packets allowed above Rate in a burst (default 5)
	For   time.Duration `yaml:"for" json:"for"`
	Force bool          `yaml:"force" json:"force,omitempty"` // throttle port 22 or picket's own port all the same
}

// sshPort is refused without force: picket's users reach the box by ssh.
const sshPort = 22

func (*ThrottleSpec) Kind() string { return "throttle" }

func (s *ThrottleSpec) Validate() error {
	var errs []error
	if s.Port < 1 || s.Port > 65535 {
		errs = append(errs, fmt.Errorf("throttle: port %d out of 1..65535", s.Port))
	}
	if s.Port == sshPort && !s.Force {
		errs = append(errs, errors.New("throttle: port 22 is sshd's: throttling it can lock out whoever has to fix the box; add force: true to do it anyway"))
	}
	switch s.Proto {
	case "", "tcp", "udp":
	default:
		errs = append(errs, fmt.Errorf("throttle: proto %q: want tcp or udp", s.Proto))
	}
	switch s.Mode {
	case "", "drop":
		if s.Rate != "" {
			errs = append(errs, errors.New("throttle: rate is only for mode rate"))
		}
	case "rate":
		if _, _, err := parseRate(s.Rate); err != nil {
			errs = append(errs, fmt.Errorf("throttle: %w", err))
		}
	default:
		errs = append(errs, fmt.Errorf("throttle: mode %q: want drop or rate", s.Mode))
	}
	if s.Burst < 0 {
		errs = append(errs, errors.New("throttle: burst must not be negative"))
	}
	if s.For <= 0 || s.For > maxFor {
		errs = append(errs, fmt.Errorf("throttle: for is required, at most %v (a throttle must end by itself)", maxFor))
	}
	return errors.Join(errs...)
}

func (s *ThrottleSpec) proto() string {
	if s.Proto == "" {
		return "tcp"
	}
	return s.Proto
}

func (s *ThrottleSpec) mode() string {
	if s.Mode == "" {
		return "drop"
	}
	return s.Mode
}

// parseRate reads nftables-style "20/second" (also minute, hour, day).
func parseRate(s string) (uint64, uint64, error) {
	n, unit, ok := strings.Cut(s, "/")
	v, err := strconv.ParseUint(n, 10, 32)
	if !ok || err != nil || v == 0 {
		return 0, 0, fmt.Errorf("rate %q: want N/second, N/minute, N/hour or N/day", s)
	}
	switch unit {
	case "second", "s":
		return v, 1, nil
	case "minute", "m":
		return v, 60, nil
	case "hour", "h":
		return v, 3600, nil
	case "day", "d":
		return v, 86400, nil
	}
	return 0, 0, fmt.Errorf("rate %q: unit %q: want second, minute, hour or day", s, unit)
}

// The nftables objects picket owns: `table inet picket { chain input { type
// filter hook input priority -10; policy accept; } }`. Each throttle is a
// set and a rule in it, both named after its journal id:
//
//	set tID { type inet_proto . inet_service; flags timeout;
//	          elements = { tcp . 80 timeout 10m expires 9m58s } }
//	meta l4proto . th dport @tID ct state new tcp flags & (fin|syn|rst|ack) == syn
//	          [limit rate over 20/second burst 5 packets] counter drop comment "picket:ID"
//
// The element's timeout is the throttle's end, kept by the kernel: once it
// expires the set is empty and the rule matches nothing, whether or not a
// picket is alive to remove it (the next one removes the inert rule and
// set). One set per throttle, not one shared set, because a rate throttle
// needs its own limit and every throttle its own counter.
const (
	nftTable   = "picket"
	nftChain   = "input"
	nftComment = "picket:"
	nftSetPre  = "t"
)

// setName is the name of throttle id's set: nftables names are
// identifiers, so the id's "-" becomes "_".
func setName(id string) string { return nftSetPre + strings.ReplaceAll(id, "-", "_") }

// throttleKey is the set's key type: the concatenation l4proto . port,
// each padded to a 32-bit register as the kernel compares them.
var throttleKey = nftables.MustConcatSetType(nftables.TypeInetProto, nftables.TypeInetService)

func throttleElement(proto byte, port int) []byte {
	p := binaryutil.BigEndian.PutUint16(uint16(port))
	return []byte{proto, 0, 0, 0, p[0], p[1], 0, 0}
}

func pktTable() *nftables.Table {
	return &nftables.Table{Name: nftTable, Family: nftables.TableFamilyINet}
}

func pktChain(t *nftables.Table) *nftables.Chain {
	accept := nftables.ChainPolicyAccept
	return &nftables.Chain{
		Name: nftChain, Table: t, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookInput, Priority: nftables.ChainPriorityRef(-10), Policy: &accept,
	}
}

// nft opens a netlink connection to nftables in netns ("" for picket's own).
func nft(netns string) (*nftables.Conn, func(), error) {
	if netns == "" {
		c, err := nftables.New()
		return c, func() {}, err
	}
	f, err := os.Open(netns)
	if err != nil {
		return nil, nil, fmt.Errorf("network namespace: %w", err)
	}
	c, err := nftables.New(nftables.WithNetNSFd(int(f.Fd())))
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	return c, func() { f.Close() }, nil
}

// throttle is the thrashing web server's `iptables -A INPUT -p tcp --dport 80 -j DROP`, but
// for new connections only (ct state new), so established ones keep working,
// and for a duration: it ends by itself, on Close, or at the next start.
func (r *Runner) throttle(ctx context.Context, o *op, s *ThrottleSpec) {
	key := fmt.Sprintf("%s/%d", s.proto(), s.Port)
	o.res.Targets = []any{key}
	what, doing := "drop new "+key+" connections", "dropping new "+key+" connections"
	if s.mode() == "rate" {
		what, doing = "rate-limit new "+key+" connections to "+s.Rate, "rate-limiting new "+key+" connections to "+s.Rate
	}
	if !s.Force && slices.Contains(r.opts.ProtectedPorts, s.Port) {
		o.refuse(fmt.Errorf("port %d is picket's own (its API and dashboard): add force: true to throttle it anyway", s.Port))
		return
	}
	if o.dry() {
		o.res.Result = fmt.Sprintf("would %s for %v", what, s.For)
		return
	}
	if a, ok := r.activeThrottle(s); ok {
		o.res.Result = fmt.Sprintf("already throttled by %s until %s", a.ID, a.Until.Format("15:04:05"))
		return
	}
	until := r.opts.Now().Add(s.For)
	undo := &Undo{NetNS: r.opts.NetNS, Proto: s.proto(), Port: s.Port}
	if !o.intent([]any{key}, undo, until) {
		return
	}
	if err := r.addThrottle(o.id, s, undo, s.For); err != nil {
		o.finish("failed", err, "") // one netlink batch: nothing was applied
		return
	}
	o.finish(fmt.Sprintf("%s until %s", doing, until.Format("15:04:05")), nil, "")
	r.arm(o.id, until)
}

// activeThrottle finds a throttle of the same port still in force.
func (r *Runner) activeThrottle(s *ThrottleSpec) (Action, bool) {
	open, _ := r.journal.Open(r.opts.Now())
	for _, a := range open {
		if a.Type == s.Kind() && a.State == StateActive && a.Undo != nil &&
			a.Undo.Proto == s.proto() && a.Undo.Port == s.Port && a.Undo.NetNS == r.opts.NetNS {
			return a, true
		}
	}
	return Action{}, false
}

// unthrottle is a throttle's revert: its rule goes.
func (r *Runner) unthrottle(a Action) (string, error) {
	msg, err := r.removeThrottles(a.Undo.NetNS, []string{a.ID}, nil)
	if msg == "" && err == nil {
		msg = "no rule left to remove"
	}
	return msg, err
}

// sweepThrottles removes every rule in picket's nftables table (in picket's
// own network namespace, and in those of the throttles in force) that no
// throttle in force accounts for: a throttle whose journal entry is gone, or
// one added by a picket that died before it could journal the result.
func (r *Runner) sweepThrottles(inForce []Action) error {
	keep := map[string]map[string]bool{r.opts.NetNS: {}} // netns -> throttle ids in force
	for _, a := range inForce {
		if keep[a.Undo.NetNS] == nil {
			keep[a.Undo.NetNS] = map[string]bool{}
		}
		keep[a.Undo.NetNS][a.ID] = true
	}
	var errs []error
	for netns, ids := range keep {
		if msg, err := r.removeThrottles(netns, nil, ids); err != nil {
			errs = append(errs, fmt.Errorf("clean picket's nftables table: %w", err))
		} else if msg != "" {
			r.log.Warn("removed throttles no journal entry accounts for", "netns", netns, "result", msg)
		}
	}
	return errors.Join(errs...)
}

// addThrottle adds throttle id's set, holding its port for d (the kernel
// expires it), and the rule that drops what the set matches, in one
// netlink batch.
func (r *Runner) addThrottle(id string, s *ThrottleSpec, u *Undo, d time.Duration) error {
	r.nftMu.Lock()
	defer r.nftMu.Unlock()
	c, done, err := nft(u.NetNS)
	if err != nil {
		return err
	}
	defer done()
	t := c.AddTable(pktTable())
	ch := c.AddChain(pktChain(t))
	proto := byte(unix.IPPROTO_TCP)
	if u.Proto == "udp" {
		proto = unix.IPPROTO_UDP
	}
	// A hash set keyed by the concatenation, as nft makes one: the
	// NFT_SET_CONCAT flag (Linux 5.6) is for interval sets only, and
	// setting it would refuse the throttle on older kernels that have had
	// concatenations and element timeouts since 4.1.
	set := &nftables.Set{Table: t, Name: setName(id), KeyType: throttleKey, HasTimeout: true,
		Comment: nftComment + id}
	// nftables counts timeouts in milliseconds; a throttle lasts at least one.
	elem := nftables.SetElement{Key: throttleElement(proto, u.Port), Timeout: max(d.Round(time.Millisecond), time.Millisecond)}
	if err := c.AddSet(set, []nftables.SetElement{elem}); err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
	exprs := []expr.Any{
		// meta l4proto . th dport @tID: registers 1 and 9 are the first two
		// 32-bit words of the key, as nft loads a concatenation.
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Payload{DestRegister: 9, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Lookup{SourceRegister: 1, SetName: set.Name, SetID: set.ID},
		// ct state new
		&expr.Ct{Register: 1, Key: expr.CtKeySTATE},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
			Mask: binaryutil.NativeEndian.PutUint32(expr.CtStateBitNEW), Xor: binaryutil.NativeEndian.PutUint32(0)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: []byte{0, 0, 0, 0}},
	}
	if u.Proto == "tcp" {
		// tcp flags & (fin|syn|rst|ack) == syn. Where conntrack was not
		// running before this rule (a host without a stateful firewall), it
		// picks up established connections mid-stream and calls their next
		// packet "new": without this, the throttle would cut them.
		exprs = append(exprs,
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 13, Len: 1},
			&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 1, Mask: []byte{0x17}, Xor: []byte{0}},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{0x02}},
		)
	}
	if s.mode() == "rate" {
		rate, unit, _ := parseRate(s.Rate)
		burst := uint32(5)
		if s.Burst > 0 {
			burst = uint32(s.Burst)
		}
		// limit rate over N/unit: only what exceeds the rate reaches the drop.
		exprs = append(exprs, &expr.Limit{Type: expr.LimitTypePkts, Rate: rate, Unit: expr.LimitTime(unit), Over: true, Burst: burst})
	}
	exprs = append(exprs, &expr.Counter{}, &expr.Verdict{Kind: expr.VerdictDrop})
	c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: exprs,
		UserData: userdata.AppendString(nil, userdata.TypeComment, nftComment+id)})
	if err := c.Flush(); err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
	return nil
}

// throttleRules lists picket's rules in netns by journal id; none when the
// table does not exist.
func throttleRules(c *nftables.Conn) (map[string]*nftables.Rule, int, error) {
	rules, _, n, err := throttleObjects(c)
	return rules, n, err
}

// hasTable says whether picket's table exists.
func hasTable(c *nftables.Conn) (bool, error) {
	tables, err := c.ListTablesOfFamily(nftables.TableFamilyINet)
	if err != nil {
		return false, fmt.Errorf("nftables: %w", err)
	}
	for _, t := range tables {
		if t.Name == nftTable {
			return true, nil
		}
	}
	return false, nil
}

// throttleObjects lists picket's rules by journal id and its sets by name
// (setName of the id: the library reads no set comments back), and how
// many objects its table holds; none when the table does not exist.
func throttleObjects(c *nftables.Conn) (map[string]*nftables.Rule, map[string]*nftables.Set, int, error) {
	if found, err := hasTable(c); err != nil || !found {
		return nil, nil, 0, err
	}
	// The table may go between the listing and the reads (another picket's
	// undo removed the last throttle): then there is nothing to list. The
	// library formats netlink's errors with %v, so ENOENT cannot be told
	// from the error; the table's absence is asked again instead.
	gone := func(err error) (bool, error) {
		if found, lerr := hasTable(c); lerr == nil && !found {
			return true, nil
		}
		return false, fmt.Errorf("nftables: %w", err)
	}
	t := pktTable()
	rules, err := c.GetRules(t, pktChain(t))
	if err != nil {
		g, err := gone(err)
		if g || err != nil {
			return nil, nil, 0, err
		}
	}
	out := map[string]*nftables.Rule{}
	for _, rl := range rules {
		if c, ok := userdata.GetString(rl.UserData, userdata.TypeComment); ok && strings.HasPrefix(c, nftComment) {
			out[strings.TrimPrefix(c, nftComment)] = rl
		} else {
			out["?"+fmt.Sprint(rl.Handle)] = rl // not ours by its comment: still in picket's table
		}
	}
	sets, err := c.GetSets(t)
	if err != nil {
		g, err := gone(err)
		if g || err != nil {
			return nil, nil, 0, err
		}
	}
	byName := map[string]*nftables.Set{}
	for _, st := range sets {
		byName[st.Name] = st
	}
	return out, byName, len(rules) + len(sets), nil
}

// removeThrottles deletes the rules of ids (all of picket's rules when keep
// is given: every rule whose id keep does not hold), and the table once it
// is empty. It reports what it removed, with the packets each dropped.
func (r *Runner) removeThrottles(netns string, ids []string, keep map[string]bool) (string, error) {
	r.nftMu.Lock()
	defer r.nftMu.Unlock()
	c, done, err := nft(netns)
	if err != nil {
		return "", err
	}
	defer done()
	rules, sets, total, err := throttleObjects(c)
	if err != nil || total == 0 {
		return "", err
	}
	del := map[string]*nftables.Rule{}
	delSets := map[string]*nftables.Set{}
	if keep != nil {
		for id, rl := range rules {
			if !keep[id] {
				del[id] = rl
			}
		}
		kept := map[string]bool{}
		for id := range keep {
			kept[setName(id)] = true
		}
		for name, st := range sets {
			if !kept[name] {
				delSets[name] = st
			}
		}
	}
	for _, id := range ids {
		if rl, ok := rules[id]; ok {
			del[id] = rl
		}
		if st, ok := sets[setName(id)]; ok {
			delSets[setName(id)] = st
		}
	}
	if len(del)+len(delSets) == 0 {
		return "", nil
	}
	var notes []string
	for id, rl := range del {
		if err := c.DelRule(rl); err != nil {
			return "", fmt.Errorf("nftables: %w", err)
		}
		notes = append(notes, fmt.Sprintf("%s dropped %d packets", id, droppedPackets(rl)))
	}
	for _, st := range delSets { // after the rules that look them up
		c.DelSet(st)
	}
	if len(del)+len(delSets) == total {
		c.DelTable(pktTable())
	}

	if err := c.Flush(); err != nil {
		return "", fmt.Errorf("nftables: %w", err)
	}
	if len(notes) == 0 {
		return "removed its set", nil
	}
	return "removed the rule (" + strings.Join(notes, ", ") + ")", nil
}

func droppedPackets(rl *nftables.Rule) uint64 {
	for _, e := range rl.Exprs {
		if c, ok := e.(*expr.Counter); ok {
			return c.Packets
		}
	}
	return 0
}
