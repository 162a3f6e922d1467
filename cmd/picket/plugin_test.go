package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// perfItem is one label=value;warn;crit;min;max of performance data.
type perfItem struct {
	label, value, uom       string
	warn, crit, min, maxStr string
}

var (
	// The guidelines' grammar (https://www.monitoring-plugins.org/doc/guidelines.html#AEN200):
	// value, min and max in the class [-0-9.], a unit from the list, warn
	// and crit in the range format [@][start:][end] with ~ for minus
	// infinity.
	perfNum   = `-?[0-9]+(\.[0-9]+)?|-?\.[0-9]+`
	perfValue = regexp.MustCompile(`^(` + perfNum + `)(s|ms|us|%|B|KB|MB|GB|TB|c)?$`)
	perfRange = regexp.MustCompile(`^@?((~|` + perfNum + `):)?(` + perfNum + `)?$`)
	perfBound = regexp.MustCompile(`^(` + perfNum + `)?$`)
	// The first line: SERVICE STATUS - text [| perfdata].
	pluginLine = regexp.MustCompile(`^(PICKET [A-Z0-9-]+) (OK|WARNING|CRITICAL|UNKNOWN) - ([^|]+?)(?: \| (.*))?$`)
)

// parsePerfdata reads space-separated items by the guidelines: a label,
// quoted with ' (and ” for a quote inside) or bare, '=', then the fields.
func parsePerfdata(s string) ([]perfItem, error) {
	var out []perfItem
	for s = strings.TrimLeft(s, " "); s != ""; s = strings.TrimLeft(s, " ") {
		var label string
		if s[0] == '\'' {
			i := 1
			for {
				j := strings.IndexByte(s[i:], '\'')
				if j < 0 {
					return nil, fmt.Errorf("unterminated label in %q", s)
				}
				label += s[i : i+j]
				i += j + 1
				if i < len(s) && s[i] == '\'' {
					label += "'"
					i++
					continue
				}
				break
			}
			s = s[i:]
		} else {
			j := strings.IndexAny(s, "= ")
			if j <= 0 {
				return nil, fmt.Errorf("no label before %q", s)
			}
			label, s = s[:j], s[j:]
		}
		if label == "" || strings.Contains(label, "=") {
			return nil, fmt.Errorf("bad label %q", label)
		}
		if !strings.HasPrefix(s, "=") {
			return nil, fmt.Errorf("label %q: no '=' in %q", label, s)
		}
		s = s[1:]
		end := strings.IndexByte(s, ' ')
		if end < 0 {
			end = len(s)
		}
		fields := strings.Split(s[:end], ";")
		s = s[end:]
		if len(fields) > 5 {
			return nil, fmt.Errorf("%s: %d fields", label, len(fields))
		}
		for len(fields) < 5 {
			fields = append(fields, "")
		}
		m := perfValue.FindStringSubmatch(fields[0])
		if m == nil {
			return nil, fmt.Errorf("%s: value %q", label, fields[0])
		}
		it := perfItem{label: label, value: m[1], uom: m[3], warn: fields[1], crit: fields[2], min: fields[3], maxStr: fields[4]}
		for _, r := range []string{it.warn, it.crit} {
			if !perfRange.MatchString(r) {
				return nil, fmt.Errorf("%s: range %q", label, r)
			}
		}
		for _, b := range []string{it.min, it.maxStr} {
			if !perfBound.MatchString(b) {
				return nil, fmt.Errorf("%s: min/max %q", label, b)
			}
		}
		out = append(out, it)
	}
	return out, nil
}

func TestParsePerfdataGrammar(t *testing.T) {
	items, err := parsePerfdata(`'orphans'=21564;16384;65536;0;65536 load1=0.5 'a b''c'=3%;@10:;~:20 rta=12.4ms;100.0;200.0;0 x=1c`)
	if err != nil || len(items) != 5 || items[2].label != "a b'c" || items[2].uom != "%" || items[3].uom != "ms" {
		t.Fatalf("%v %+v", err, items)
	}
	for _, bad := range []string{`'x'=1e5`, `x`, `'x=1`, `x=1;abc`, `x=1;;;;;`, `x=1;;;a`, `x=1,5`, `x=1;10:5:3`} {
		if _, err := parsePerfdata(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

// pluginFixtures are the fixture trees and saved snapshots the doctor and
// cmd/picket tests read, as doctor arguments.
func pluginFixtures(t *testing.T) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	trees, _ := filepath.Glob(filepath.Join(doctorFixtures, "*"))
	if len(trees) < 6 {
		t.Fatalf("fixture trees: %v", trees)
	}
	for _, dir := range trees {
		// A tree of two looks (before/, after/) is read at its second.
		if _, err := os.Stat(filepath.Join(dir, "after")); err == nil {
			dir = filepath.Join(dir, "after")
		}
		out[filepath.Base(filepath.Dir(dir))+"/"+filepath.Base(dir)] = []string{"--root", dir, "--interval", "0"}
	}
	out["moscow"] = []string{"--root", moscowRoot, "--interval", "0"}
	snaps, _ := filepath.Glob("../../testdata/snapshots/*.json")
	if len(snaps) == 0 {
		t.Fatal("no saved snapshots under testdata/snapshots")
	}
	for _, p := range snaps {
		out["snapshot "+filepath.Base(p)] = []string{"--snapshot", p}
	}
	return out
}

// TestDoctorCheckPlugin runs every check on every fixture through the real
// binary as a monitoring system would: the first line follows the
// guidelines, the performance data parses by their grammar, the exit code
// is the status's, and the verdict is the one plain doctor gives.
func TestDoctorCheckPlugin(t *testing.T) {
	exitOf := map[string]int{"OK": 0, "WARNING": 1, "CRITICAL": 2, "UNKNOWN": 3}
	for name, args := range pluginFixtures(t) {
		full, _ := runBinary(t, append([]string{"doctor", "--json"}, args...)...)
		want := map[string]string{}
		var r doctorJSON
		if err := json.Unmarshal(full, &r); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for _, f := range r.Findings {
			want[f.ID] = strings.ToUpper(f.Severity)
		}
		for _, id := range checkIDs {
			out, code := runBinary(t, append([]string{"doctor", "--check", id}, args...)...)
			first, _, _ := strings.Cut(string(out), "\n")
			m := pluginLine.FindStringSubmatch(first)
			if m == nil {
				t.Errorf("%s %s: first line not SERVICE STATUS - text | perfdata: %q", name, id, first)
				continue
			}
			if m[1] != "PICKET "+strings.ToUpper(id) || exitOf[m[2]] != code || m[2] != want[id] {
				t.Errorf("%s %s: %q %q exit %d; doctor says %s", name, id, m[1], m[2], code, want[id])
			}
			items, err := parsePerfdata(m[4])
			if err != nil {
				t.Errorf("%s %s: perfdata %q: %v", name, id, m[4], err)
				continue
			}
			seen := map[string]bool{}
			for _, it := range items {
				if seen[it.label] {
					t.Errorf("%s %s: label %q twice", name, id, it.label)
				}
				seen[it.label] = true
				if it.maxStr != "" && it.uom != "%" && it.uom != "c" {
					v, _ := strconv.ParseFloat(it.value, 64)
					if mx, _ := strconv.ParseFloat(it.maxStr, 64); mx <= 0 {
						t.Errorf("%s %s: %s=%g has max %s", name, id, it.label, v, it.maxStr)
					}
				}
			}
			if m[2] != "UNKNOWN" && len(items) == 0 && !strings.Contains(m[3], "not an OpenVZ") &&
				!strings.Contains(m[3], "not loaded") && !strings.Contains(m[3], "needs history") &&
				!strings.Contains(m[3], "no cgroup hierarchy mounted") {
				t.Errorf("%s %s: no performance data: %s", name, id, first)
			}
			for _, l := range strings.Split(string(out), "\n")[1:] {
				if strings.Contains(l, "|") {
					t.Errorf("%s %s: a '|' in the long text would be read as perfdata: %q", name, id, l)
				}
			}
		}
	}
}

// TestDoctorCheckThresholds: --warning/--critical for one call, with the
// plugins' range syntax, on the first metric or a named one; mistakes are
// UNKNOWN (3) on stdout as one plugin line.
func TestDoctorCheckThresholds(t *testing.T) {
	root := []string{"--root", filepath.Join(doctorFixtures, "tcp-orphans"), "--interval", "0", "--check", "tcp-orphans"}
	run := func(extra ...string) (string, int) {
		out, _, code := runCLI(t, append(append([]string{"doctor"}, root...), extra...)...)
		first, _, _ := strings.Cut(out, "\n")
		return first, code
	}
	if l, code := run(); code != 1 || !strings.HasPrefix(l, "PICKET TCP-ORPHANS WARNING - 21564 orphans ×4 = 86256 exceed tcp_max_orphans 65536") ||
		!strings.Contains(l, "| 'orphans'=21564;16384;65536;0;65536 ") {
		t.Errorf("default: %d %s", code, l)
	}
	if l, code := run("--critical", "20000"); code != 2 || !strings.Contains(l, "CRITICAL") || !strings.Contains(l, "'orphans'=21564;16384;20000;0;65536") {
		t.Errorf("--critical 20000: %d %s", code, l)
	}
	if l, code := run("--warning", "orphans=30000", "--critical", "orphans=@60000:"); code != 0 || !strings.Contains(l, "OK") ||
		!strings.Contains(l, "'orphans'=21564;30000;@60000:;0;65536") {
		t.Errorf("named overrides: %d %s", code, l)
	}
	for _, bad := range [][]string{{"--warning", "20:10"}, {"--critical", "sockets=5"}, {"--warning", "x"}} {
		out, _, code := runCLI(t, append(append([]string{"doctor"}, root...), bad...)...)
		if code != 3 {
			t.Errorf("%v: exit %d, want 3: %s", bad, code, out)
		}
	}
	if out, _, code := runCLI(t, "doctor", "--check", "no-such-check", "--interval", "0", "--root", moscowRoot); code != 3 ||
		!strings.HasPrefix(out, "PICKET NO-SUCH-CHECK UNKNOWN - --check \"no-such-check\": no such check (want one of tcp-orphans,") {
		t.Errorf("unknown check: %d %q", code, out)
	}
	if _, errOut, code := runCLI(t, "doctor", "--warning", "5", "--interval", "0", "--root", moscowRoot); code != 3 || !strings.Contains(errOut, "need --check") {
		t.Errorf("--warning without --check: %d %q", code, errOut)
	}
	if out, _, code := runCLI(t, "doctor", "--check", "tcp-orphans", "--root", t.TempDir()); code != 3 || !strings.HasPrefix(out, "PICKET TCP-ORPHANS UNKNOWN - ") {
		t.Errorf("unreadable root: %d %q", code, out)
	}
	if _, err := os.Stat(moscowRoot); err != nil {
		t.Fatal(err)
	}
}
