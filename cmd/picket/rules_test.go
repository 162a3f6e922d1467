package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"syscall"
	"testing"

	"github.com/picket-guard/picket/internal/testkit"
)

func TestValidateExamples(t *testing.T) {
	files, _ := filepath.Glob("../../examples/*.yaml")
	if len(files) < 5 {
		t.Fatalf("examples: %v", files)
	}
	out, errOut, code := runCLI(t, append([]string{"validate"}, files...)...)
	if code != 0 {
		t.Fatalf("validate examples: exit %d\n%s", code, errOut)
	}
	if n := strings.Count(out, ": ok: "); n != len(files) {
		t.Errorf("want one ok line per file:\n%s", out)
	}
	if out, errOut, code := runCLI(t, "validate"); code != 0 || !strings.Contains(out, "built-in default") {
		t.Errorf("validate (default): %d %s %s", code, out, errOut)
	}
}

func TestValidateHostView(t *testing.T) {
	for _, host := range []string{"moscow", "nantes"} {
		out, errOut, code := runCLI(t, "validate", "--host", host, "../../examples/procnumchk.yaml")
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		testkit.Golden(t, "validate-procnumchk-"+host+".txt", []byte(out))
	}
}

// TestValidateMistakes: each kind of mistake, with its exact position.
func TestValidateMistakes(t *testing.T) {
	dir := t.TempDir()
	cases := []struct{ src, want string }{
		{"outputs: {ops: {mail: {to: [root@localhost], sever: x}}}\n", `bad.yaml:1:46: outputs.ops.mail: unknown key "sever"`},
		{"rules:\n  - name: r\n    table: process_groups\n    then: [{kill: {user: x, signal: TREM}}]\n", `bad.yaml:4:`},
		{"rules:\n  - name: r\n    table: socket_holders\n    if: non_tcpp > 5\n", `bad.yaml:4:9: rule r case default: if: unknown name non_tcpp`},
		{"rules:\n  - name: r\n    table: process_groups\n    then: [{throttle: {port: 80, for: 5m, mode: block}}]\n", `bad.yaml:4:`},
	}
	for _, tc := range cases {
		p := filepath.Join(dir, "bad.yaml")
		os.WriteFile(p, []byte(tc.src), 0o644)
		_, errOut, code := runCLI(t, "validate", p)
		if code != 1 || !strings.Contains(errOut, tc.want) {
			t.Errorf("validate:\n%s\nexit %d, stderr %q, want …%s…", tc.src, code, errOut, tc.want)
		}
	}
}

var journalID = regexp.MustCompile(`"id": "[^"]*"`)

// TestCheckExamplesGolden runs each example over a fixture tree of its
// story: the moscow fixture, plus the storm's processes cloned from one of
// its own (so actions resolve their targets in the fixture, never on the
// machine running the test).
func TestCheckExamplesGolden(t *testing.T) {
	imapd := []clone{{from: 100, first: 1000, n: 94, comm: "imapd", uid: 1001}, {from: 100, first: 2000, n: 22, comm: "imapd", uid: 1002},
		{from: 100, first: 3000, n: 65, comm: "sendmail", uid: 1004}, {from: 100, first: 4000, n: 44, comm: "httpd", uid: 33},
		{from: 100, first: 5000, n: 12, comm: "ypserv", uid: 65534}}
	apache := []clone{{from: 100, first: 6000, n: 220, comm: "apache2", uid: 33}}
	cases := []struct {
		example, host string
		add           []clone
	}{
		{"procnumchk", "moscow", imapd},
		{"procnumchk", "nantes", imapd},
		{"numothersock", "moscow", nil},
		{"tcp-orphans", "moscow", nil},
		{"apache-thrash", "www1", apache},
		{"socket-leak", "moscow", nil},
	}
	for _, tc := range cases {
		t.Run(tc.example+"-"+tc.host, func(t *testing.T) {
			root := fixtureWith(t, tc.add)
			out, errOut, code := runCLI(t, "check", "--config", "../../examples/"+tc.example+".yaml",
				"--root", root, "--host", tc.host, "--dry-run", "--json", "--state-dir", t.TempDir())
			if code > 1 {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			testkit.Golden(t, "check-"+tc.example+"-"+tc.host+".json", journalID.ReplaceAll([]byte(out), []byte(`"id": "…"`)))
		})
	}
}

func TestCheckSnapshotNeedsDryRun(t *testing.T) {
	_, errOut, code := runCLI(t, "check", "--snapshot", "../../testdata/snapshots/moscow.json")
	if code != 2 || !strings.Contains(errOut, "needs --dry-run") {
		t.Errorf("exit %d: %s", code, errOut)
	}
}

// TestCheckImapdStormLive is the imapd storm for real: 100 imapd under a
// non-root user; ProcNumChkRed fires for exactly that row, and its kill
// targets exactly those pids.
func TestCheckImapdStormLive(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: the storm runs under uid 65534 (nobody)")
	}
	const n = 100
	var pids []int
	for _, c := range testkit.Sleepers(t, "imapd", n, &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}) {
		pids = append(pids, c.Process.Pid)
	}
	out, errOut, code := runCLI(t, "check", "--config", "../../examples/procnumchk.yaml", "--host", "moscow",
		"--dry-run", "--json", "--state-dir", t.TempDir())
	if code != 1 {
		t.Fatalf("exit %d (want 1: alarms)\n%s\n%s", code, out, errOut)
	}
	var rep struct {
		Host   string `json:"host"`
		Alarms []struct {
			Rule, Case, Level string
			Row               map[string]any
			Actions           []struct {
				Type    string `json:"type"`
				DryRun  bool   `json:"dry_run"`
				Targets []any  `json:"targets"`
				Result  string `json:"result"`
			}
		}
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("json: %v\n%s", err, out)
	}
	found := false
	for _, a := range rep.Alarms {
		if a.Rule != "ProcNumChkRed" || a.Case != "imapd" || a.Row["comm"] != "imapd" || a.Row["user"] != "nobody" {
			continue // other rows of this live host are not the test's
		}
		if a.Row["comm"] != "imapd" || a.Row["user"] != "nobody" || a.Row["count"] != float64(n) {
			t.Errorf("Red row = %v", a.Row)
			continue
		}
		found = true
		var kills int
		for _, x := range a.Actions {
			if x.Type != "kill" {
				continue
			}
			kills++
			if !x.DryRun {
				t.Errorf("kill not a dry run")
			}
			var got []int
			for _, v := range x.Targets {
				got = append(got, int(v.(float64)))
			}
			sort.Ints(got)
			want := append([]int(nil), pids...)
			sort.Ints(want)
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("kill targets = %v\nwant exactly the storm's %v", got, want)
			}
		}
		if kills != 1 {
			t.Errorf("want one kill action, got %+v", a.Actions)
		}
	}
	if !found || rep.Host != "moscow" {
		t.Fatalf("no ProcNumChkRed imapd alarm for nobody:\n%s", out)
	}
	// Dry run: every target still alive.
	for _, pid := range pids {
		if err := syscall.Kill(pid, 0); err != nil {
			t.Errorf("pid %d gone after a dry run: %v", pid, err)
		}
	}
}

// TestCheckSnapshotReplay: a saved snapshot (an incident's) is evaluated;
// its actions are listed, not resolved against this host.
func TestCheckSnapshotReplay(t *testing.T) {
	out, errOut, code := runCLI(t, "check", "--config", "../../examples/procnumchk.yaml", "--snapshot",
		"../../testdata/snapshots/imapd-storm.json", "--host", "moscow", "--dry-run", "--json", "--state-dir", t.TempDir())
	if code != 1 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if !strings.Contains(out, `"rule": "ProcNumChkRed"`) || !strings.Contains(out, "replaying a saved snapshot") {
		t.Errorf("replay output:\n%s", out)
	}
}

// clone adds n processes to a fixture tree, copies of pid from with a new
// comm and uid.
type clone struct {
	from, first, n int
	comm           string
	uid            int
}

func fixtureWith(t *testing.T, add []clone) string {
	t.Helper()
	root := filepath.Join(t.TempDir(), "root")
	if out, err := exec.Command("cp", "-a", moscowRoot, root).CombinedOutput(); err != nil {
		t.Fatalf("copy fixture: %v %s", err, out)
	}
	for _, c := range add {
		src := filepath.Join(root, "proc", fmt.Sprint(c.from))
		for i := 0; i < c.n; i++ {
			pid := c.first + i
			dst := filepath.Join(root, "proc", fmt.Sprint(pid))
			if out, err := exec.Command("cp", "-a", src, dst).CombinedOutput(); err != nil {
				t.Fatalf("clone: %v %s", err, out)
			}
			edit := func(name string, f func(string) string) {
				p := filepath.Join(dst, name)
				b, err := os.ReadFile(p)
				if err != nil {
					t.Fatal(err)
				}
				os.WriteFile(p, []byte(f(string(b))), 0o644)
			}
			edit("stat", func(s string) string {
				rest := s[strings.LastIndex(s, ")")+1:]
				return fmt.Sprintf("%d (%s)%s", pid, c.comm, rest)
			})
			edit("comm", func(string) string { return c.comm + "\n" })
			edit("status", func(s string) string {
				lines := strings.Split(s, "\n")
				for i, l := range lines {
					switch {
					case strings.HasPrefix(l, "Name:"):
						lines[i] = "Name:\t" + c.comm
					case strings.HasPrefix(l, "Pid:"), strings.HasPrefix(l, "Tgid:"):
						lines[i] = strings.SplitN(l, ":", 2)[0] + ":\t" + fmt.Sprint(pid)
					case strings.HasPrefix(l, "Uid:"), strings.HasPrefix(l, "Gid:"):
						u := fmt.Sprint(c.uid)
						lines[i] = strings.SplitN(l, ":", 2)[0] + ":\t" + u + "\t" + u + "\t" + u + "\t" + u
					}
				}
				return strings.Join(lines, "\n")
			})
		}
	}
	return root
}

// TestCheckStrictModes: picket check acts as root on its configuration, so
// a configuration others could change is refused (the file as opened, and
// every directory above it), where before a 0666 file ran its exec action.
// A dry run, which changes nothing, still reads it.
func TestCheckStrictModes(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: StrictModes is what stops root running another user's rules")
	}
	testkit.Sleepers(t, "pkt-strict", 1, nil)
	marker := filepath.Join(t.TempDir(), "ran")
	cfg := fmt.Sprintf(`rules:
  - name: strict
    table: process_groups
    if: comm == "pkt-strict"
    then: [{exec: {argv: [/usr/bin/touch, %q]}}]
`, marker)
	for _, c := range []struct {
		name              string
		fileMode, dirMode os.FileMode
	}{{"file 0666", 0o666, 0o755}, {"directory 0777", 0o644, 0o777}} {
		dir := filepath.Join(t.TempDir(), "etc")
		os.Mkdir(dir, 0o755)
		path := filepath.Join(dir, "picket.yaml")
		if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
			t.Fatal(err)
		}
		os.Chmod(path, c.fileMode)
		os.Chmod(dir, c.dirMode)
		_, errOut, code := runCLI(t, "check", "--config", path, "--state-dir", t.TempDir())
		if code != 2 || !strings.Contains(errOut, "writable by group or others") {
			t.Errorf("%s: exit %d: %s", c.name, code, errOut)
		}
		if _, err := os.Stat(marker); err == nil {
			t.Fatalf("%s: the exec action ran", c.name)
		}
		if _, errOut, code := runCLI(t, "check", "--config", path, "--dry-run", "--state-dir", t.TempDir()); code != 1 {
			t.Errorf("%s: dry run: exit %d (want 1: an alarm): %s", c.name, code, errOut)
		}
	}
	// The same configuration, root's and 0644: it runs.
	path := filepath.Join(t.TempDir(), "picket.yaml")
	os.WriteFile(path, []byte(cfg), 0o644)
	if _, errOut, code := runCLI(t, "check", "--config", path, "--state-dir", t.TempDir()); code != 1 {
		t.Errorf("safe configuration: exit %d: %s", code, errOut)
	}
	if _, err := os.Stat(marker); err != nil {
		t.Errorf("the safe configuration's exec did not run: %v", err)
	}
}
