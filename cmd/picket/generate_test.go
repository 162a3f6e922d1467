package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/picket-guard/picket/internal/testkit"
)

// helpFlags are the flags a command's --help lists.
func helpFlags(t *testing.T, cmd string) []string {
	out, _, code := runCLI(t, cmd, "--help")
	if code != 0 {
		t.Fatalf("%s --help: exit %d", cmd, code)
	}
	var flags []string
	for _, m := range regexp.MustCompile(`(?m)^  -([a-z0-9-]+)`).FindAllStringSubmatch(out, -1) {
		flags = append(flags, m[1])
	}
	return flags
}

// TestManPage: every command and every flag --help prints is in the page,
// which mandoc renders without a single message (-T lint: errors, warnings
// and style).
func TestManPage(t *testing.T) {
	page := filepath.Join(t.TempDir(), "picket.1")
	if _, errOut, code := runCLI(t, "generate", "--man", page, "--date", "2026-12-01"); code != 0 {
		t.Fatalf("generate: %d %s", code, errOut)
	}
	b, err := os.ReadFile(page)
	if err != nil {
		t.Fatal(err)
	}
	man := string(b)
	if !strings.HasPrefix(man, `.\"`) || !strings.Contains(man, ".TH PICKET 1 2026-12-01 ") {
		t.Errorf("header: %.200s", man)
	}
	for name := range commands() {
		if !strings.Contains(man, `.SS "picket `+name+` [flags]`) {
			t.Errorf("no section for %s", name)
		}
		flags := helpFlags(t, name)
		if len(flags) == 0 && name != "version" {
			t.Errorf("%s --help lists no flags", name)
		}
		sec := man[strings.Index(man, `.SS "picket `+name+` `):]
		if i := strings.Index(sec[4:], ".SS "); i >= 0 {
			sec = sec[:i+4]
		}
		for _, f := range flags {
			if !strings.Contains(sec, `\-\-`+strings.ReplaceAll(f, "-", `\-`)) {
				t.Errorf("%s: --%s is in --help but not in the man page", name, f)
			}
		}
	}
	if strings.Contains(man, "\n\n") || regexp.MustCompile(`[^\x00-\x7e]`).MatchString(man) {
		t.Errorf("blank lines or raw non-ASCII in the page")
	}
	out, err := exec.Command(testkit.Need(t, "mandoc", "mandoc"), "-T", "lint", "-W", "all", page).CombinedOutput()
	if err != nil || len(out) > 0 {
		t.Errorf("mandoc -T lint: %v\n%s", err, out)
	}
	// And it reads: the doctor section as a terminal shows it.
	txt, err := exec.Command("mandoc", "-T", "utf8", page).Output()
	if err != nil || !strings.Contains(string(txt), "PICKET TCP-ORPHANS WARNING - 21564 orphans ×4") {
		t.Errorf("mandoc -T utf8: %v", err)
	}
}

// TestBashCompletion sources the generated script in bash and completes as
// a user would: commands, a command's flags, enumerated values, files.
func TestBashCompletion(t *testing.T) {
	bash := testkit.Need(t, "bash", "bash")
	dir := t.TempDir()
	script := filepath.Join(dir, "picket.bash")
	if _, errOut, code := runCLI(t, "generate", "--bash-completion", script); code != 0 {
		t.Fatalf("generate: %d %s", code, errOut)
	}
	if err := os.WriteFile(filepath.Join(dir, "conf.yaml"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "confdir"), 0o755); err != nil {
		t.Fatal(err)
	}
	complete := func(words ...string) []string {
		t.Helper()
		quoted := make([]string, len(words))
		for i, w := range words {
			quoted[i] = "'" + w + "'"
		}
		src := ". " + script + "\nCOMP_WORDS=(" + strings.Join(quoted, " ") + ")\nCOMP_CWORD=" +
			strconv.Itoa(len(words)-1) + "\n_picket\nprintf '%s\\n' \"${COMPREPLY[@]}\"\n"
		cmd := exec.Command(bash, "--norc", "--noprofile", "-c", src)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%v: %v\n%s", words, err, out)
		}
		return strings.Fields(string(out))
	}
	for _, tc := range []struct {
		words []string
		want  string
	}{
		{[]string{"picket", "do"}, "doctor"},
		{[]string{"picket", "doctor", "--ch"}, "--check"},
		{[]string{"picket", "doctor", "--check", "tcp-o"}, "tcp-orphans"},
		{[]string{"picket", "doctor", "-check", "fd"}, "fd-exhaustion"},
		{[]string{"picket", "doctor", "--color", "n"}, "never"},
		{[]string{"picket", "validate", "--all"}, "--all-hosts"},
		{[]string{"picket", "validate", "co"}, "conf.yaml confdir"},
		{[]string{"picket", "run", "--config", "conf."}, "conf.yaml"},
		{[]string{"picket", "doctor", "--root", "conf"}, "confdir"},
		{[]string{"picket", "doctor", "--root", "=", "conf"}, "confdir"},
		{[]string{"picket", "help", "und"}, "undo"},
		{[]string{"picket", "doctor", "--interval", ""}, ""},
	} {
		if got := strings.Join(complete(tc.words...), " "); got != tc.want {
			t.Errorf("%q: %q, want %q", tc.words, got, tc.want)
		}
	}
}

func TestGenerateUsage(t *testing.T) {
	if _, errOut, code := runCLI(t, "generate"); code != 1 || !strings.Contains(errOut, "nothing to do") {
		t.Errorf("no flags: %d %q", code, errOut)
	}
	if _, errOut, code := runCLI(t, "generate", "--man", "-", "--date", "soon"); code != 1 || !strings.Contains(errOut, "YYYY-MM-DD") {
		t.Errorf("bad date: %d %q", code, errOut)
	}
	out, _, code := runCLI(t, "generate", "--man", "-", "--date", "2026-01-02")
	if code != 0 || !strings.Contains(out, ".TH PICKET 1 2026-01-02") {
		t.Errorf("--man -: %d %.100q", code, out)
	}
	t.Setenv("SOURCE_DATE_EPOCH", "1767225600")
	if out, _, _ := runCLI(t, "generate", "--man", "-"); !strings.Contains(out, ".TH PICKET 1 2026-01-01") {
		t.Errorf("SOURCE_DATE_EPOCH not used: %.100q", out)
	}
}
