package packaging

import (
	"os"
	"os/exec"
	"regexp"
	"slices"
	"testing"

	"github.com/picket-guard/picket/internal/testkit"
)

// The shipped rules load in Debian's Prometheus (promtool check rules:
// syntax, PromQL, and the lint that finds duplicate recording rules), and
// their unit tests pass: each alert fires for the host it is about, after
// its `for`, and not for the other host.
func TestPrometheusRules(t *testing.T) {
	promtool := testkit.Need(t, "promtool", "prometheus")
	for _, args := range [][]string{
		{"check", "rules", "picket-rules.yml"},
		{"test", "rules", "picket-rules.test.yml"},
	} {
		cmd := exec.Command(promtool, args...)
		cmd.Dir = "prometheus"
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("promtool %v: %v\n%s", args, err, out)
		}
	}
}

// Every picket_ series the rules read is one picket exports: a rule over
// a renamed metric would never fire, and promtool cannot know.
func TestPrometheusRulesReadPicketsMetrics(t *testing.T) {
	rules, err := os.ReadFile("prometheus/picket-rules.yml")
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile("../internal/server/metrics.go")
	if err != nil {
		t.Fatal(err)
	}
	var exported []string
	for _, m := range regexp.MustCompile(`\bd\("([a-z0-9_]+)"`).FindAllSubmatch(src, -1) {
		exported = append(exported, "picket_"+string(m[1]))
	}
	if len(exported) < 50 {
		t.Fatalf("found %d metric names in metrics.go: has the way they are declared changed?", len(exported))
	}
	// The forecast's gauge: absent while no limit has a trend, and so
	// allowed before its collector lands.
	exported = append(exported, "picket_limit_exhaustion_seconds")
	seen := map[string]bool{}
	for _, m := range regexp.MustCompile(`\bpicket_[a-z0-9_]+`).FindAll(rules, -1) {
		name := string(m)
		if seen[name] {
			continue
		}
		seen[name] = true
		if !slices.Contains(exported, name) {
			t.Errorf("the rules read %s, which picket does not export", name)
		}
	}
	if len(seen) < 15 {
		t.Errorf("the rules read only %d picket metrics", len(seen))
	}
}
