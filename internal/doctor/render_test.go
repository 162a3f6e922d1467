package doctor

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/picket-guard/picket/internal/snapshot"
)

func TestColorOnlyWhenAsked(t *testing.T) {
	s := healthy()
	s.Kernel.Sockstat.TCP.Orphan = 20000
	r := Run(Input{Cur: s}, Checks())
	var plain, color bytes.Buffer
	if err := WriteText(&plain, r, TextOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := WriteText(&color, r, TextOptions{Color: true}); err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(plain.Bytes(), []byte("\x1b")) {
		t.Errorf("escape sequences without colour")
	}
	if !bytes.Contains(color.Bytes(), []byte("\x1b[1;33mWARNING")) || !bytes.Contains(color.Bytes(), []byte("\x1b[32mOK")) {
		t.Errorf("no colours with Color:\n%s", color.String())
	}
	if stripped := strings.NewReplacer("\x1b[1;33m", "", "\x1b[32m", "", "\x1b[0m", "").Replace(color.String()); stripped != plain.String() {
		t.Errorf("colour changes more than the colours")
	}
}

// TestVerbose: ok findings get one line unless Verbose.
func TestVerbose(t *testing.T) {
	r := Run(Input{Cur: healthy()}, Checks())
	var short, long bytes.Buffer
	WriteText(&short, r, TextOptions{})
	WriteText(&long, r, TextOptions{Verbose: true})
	if n := strings.Count(short.String(), "\n"); n != len(Checks())+1 {
		t.Errorf("%d lines for the ok findings:\n%s", n, short.String())
	}
	if strings.Count(long.String(), "  evidence:") != len(Checks()) || strings.Count(long.String(), "  why:") != len(Checks()) {
		t.Errorf("verbose output lacks evidence or explanations:\n%s", long.String())
	}
}

// hostileSnapshot puts one name everywhere a process or user chooses one:
// a storm's comm and user, a socket holder, a process at its fd limit, a
// beancounter row, the host name.
func hostileSnapshot(name string) *snapshot.Snapshot {
	s := healthy()
	s.Host = name
	// The kernel escapes what it prints; picket decodes it: the OOM
	// victim's comm and cgroup, the cgroup of a pids refusal.
	s.KernelLog = kernelLogAt(append(oomLines(time.Minute, 300, name, "/"+name),
		kline{time.Minute, 6, "cgroup: fork rejected by pids controller in /" + name, 0})...)
	list := append(s.Processes.List, many(80, 1000, 300, name, 1001, name, 30<<20)...)
	list = append(list, snapshot.Process{PID: 300, PPID: 1, User: name, UID: 1001, Comm: name, Threads: 1, FDs: 1020, FDLimit: 1024})
	setProcs(s, list)
	setNproc(s, 1001, 82)
	s.Sockets.Processes = []snapshot.Holder{{PID: 300, User: name, UID: 1001, Comm: name,
		SocketCounts: snapshot.SocketCounts{Unix: 3000, UDP: 100}, Total: 3100, FDs: 1020, FDLimit: 1024}}
	s.Sockets.Totals = snapshot.SocketCounts{Unix: 3010, UDP: 102}
	s.Beancounters = []snapshot.Beancounter{{UID: name, Resource: name, Held: 5, Barrier: 5, Limit: 5, Failcnt: 1},
		{UID: "101", Resource: "numothersock", Held: 400, Barrier: 400, Limit: 400, Failcnt: 2}}
	s.Memory.PSI = map[string]snapshot.PSI{"memory": {SomeAvg10: 80, FullAvg10: 60}}
	return s
}

// checkSafe fails on anything in a rendering that a terminal would act
// on: C0/C1 controls other than newline, DEL, bidi overrides, invalid UTF-8.
func checkSafe(t *testing.T, out string) {
	t.Helper()
	if !utf8.ValidString(out) {
		t.Fatalf("invalid UTF-8 in the output")
	}
	for i, r := range out {
		if (r != '\n' && unicode.IsControl(r)) || unicode.Is(unicode.Bidi_Control, r) {
			t.Fatalf("control character %U at byte %d: %q", r, i, out[max(0, i-40):min(len(out), i+40)])
		}
	}
}

// TestHostileNames: names that would run a command if pasted, or repaint
// the terminal, reach the output escaped and never a fix line.
func TestHostileNames(t *testing.T) {
	for _, name := range []string{"$(touch /tmp/pwned)", "\x1b[2J\x1b]0;pw\a", "a\nCRITICAL fake: line", "x\u202egnp.exe", "\xff\xfe`id`"} {
		r := Run(Input{Cur: hostileSnapshot(name)}, Checks())
		var out bytes.Buffer
		if err := WriteText(&out, r, TextOptions{Verbose: true}); err != nil {
			t.Fatal(err)
		}
		checkSafe(t, out.String())
		if strings.Contains(out.String(), "\nCRITICAL fake") {
			t.Errorf("a newline in a name forged a line")
		}
		for _, f := range r.Findings {
			for _, l := range f.Fix {
				if strings.Contains(l, "touch /tmp/pwned") || strings.Contains(l, "`id`") || strings.Contains(l, "gnp.exe") {
					t.Errorf("%s: a name in a fix line: %q", f.ID, l)
				}
			}
			checkSafe(t, f.Title)
			checkSafe(t, f.Explanation)
		}
		// The data itself keeps the name verbatim: JSON escapes it.
		b, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		if !json.Valid(b) {
			t.Errorf("invalid JSON")
		}
		f, _ := r.Find("process-storm")
		v, _ := f.Evidence.Get("storms")
		if g := v.(GroupRows); len(g) == 0 || g[0].Comm != name {
			t.Errorf("storm comm not kept verbatim: %v", g)
		}
	}
}

// FuzzHostileNames: whatever name a process picks, the human output holds
// no control character and the JSON stays valid.
func FuzzHostileNames(f *testing.F) {
	for _, s := range []string{"imapd", "$(reboot)", "\x1b[31m", "\u202e", "\xff", "a\r\nb", "\\x1b", "%s%n", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		r := Run(Input{Cur: hostileSnapshot(name)}, Checks())
		var out bytes.Buffer
		if err := WriteText(&out, r, TextOptions{Verbose: true}); err != nil {
			t.Fatal(err)
		}
		checkSafe(t, out.String())
		if _, err := json.Marshal(r); err != nil {
			t.Fatal(err)
		}
	})
}

func TestWrap(t *testing.T) {
	got := wrap("aa bb cc dd", 5)
	if strings.Join(got, "|") != "aa bb|cc dd" {
		t.Errorf("wrap = %q", got)
	}
	if got := wrap("averyveryverylongword x", 5); strings.Join(got, "|") != "averyveryverylongword|x" {
		t.Errorf("long word = %q", got)
	}
}
