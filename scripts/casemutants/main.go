// Command casemutants is the hand-made half of scripts/mutate: the mutants
// gremlins does not make. gremlins mutates operators (< to <=, == to !=,
// + to -) but leaves `switch` statements alone, and much of picket's
// deciding is a switch: which case of a rule settles a row, which severity
// a doctor check gives, which kind an action is. For every case clause of
// every switch in a package's non-test files this makes, one at a time:
//
//   - body: the clause's statements deleted (the case still matches, and
//     does nothing: a fallthrough to "nothing");
//   - swap: the clause's labels exchanged with the next clause's, in
//     expression switches (in a tagless switch this changes which
//     condition wins when both hold);
//
// and runs the package's tests on a copy of the module carrying the mutant.
// A mutant that does not compile is "not viable" and not counted (deleting
// the only use of a variable, or the return a function ends with); a test
// failure or a timeout kills it; passing tests let it live. Efficacy is
// killed / (killed + lived), as gremlins counts it.
//
// It is a test tool, not part of picket. It never touches the tree it is
// run from: the module is copied to a temporary directory first.
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"
)

type mutant struct {
	file       string // relative to the module root
	line       int
	kind       string // body or swap
	start, end int    // byte range replaced
	repl       []byte
}

func main() {
	timeout := flag.Duration("timeout", 5*time.Minute, "`go test -timeout` of each run")
	short := flag.Bool("short", false, "run the tests with -short")
	run := flag.String("run", "", "run only the tests matching `REGEXP`")
	verbose := flag.Bool("v", false, "print every mutant, not only those that live")
	exclude := flag.String("exclude", "", "leave out the files whose path (from the module root) matches `REGEXP`")
	flag.Usage = func() {
		fmt.Fprintf(os.Stderr, "usage: casemutants [flags] PKGDIR (relative to the module root, e.g. internal/rules)\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() != 1 {
		flag.Usage()
		os.Exit(2)
	}
	pkg := filepath.Clean(flag.Arg(0))
	root, err := os.Getwd()
	if err != nil {
		fail(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		fail(fmt.Errorf("run from the module root: %w", err))
	}
	var skip *regexp.Regexp
	if *exclude != "" {
		if skip, err = regexp.Compile(*exclude); err != nil {
			fail(err)
		}
	}
	ms, err := find(root, pkg, skip)
	if err != nil {
		fail(err)
	}
	tmp, err := os.MkdirTemp("", "picket-casemutants.")
	if err != nil {
		fail(err)
	}
	defer os.RemoveAll(tmp)
	if err := copyModule(root, tmp); err != nil {
		fail(err)
	}
	args := []string{"test", "-count=1", "-failfast", "-timeout", timeout.String()}
	if *short {
		args = append(args, "-short")
	}
	if *run != "" {
		args = append(args, "-run", *run)
	}
	args = append(args, "./"+pkg)
	// The unmutated tests must pass, or every mutant looks killed.
	if out, err := goCmd(tmp, *timeout, args...); err != nil {
		fail(fmt.Errorf("the tests fail without a mutant:\n%s", out))
	}
	var killed, lived, notViable, timedOut int
	for _, m := range ms {
		path := filepath.Join(tmp, m.file)
		orig, err := os.ReadFile(path)
		if err != nil {
			fail(err)
		}
		mut := append(append(append([]byte{}, orig[:m.start]...), m.repl...), orig[m.end:]...)
		if err := os.WriteFile(path, mut, 0o644); err != nil {
			fail(err)
		}
		status := ""
		if _, err := goCmd(tmp, *timeout, "build", "-o", os.DevNull, "./"+pkg); err != nil {
			status, notViable = "NOT VIABLE", notViable+1
		} else if _, err := goCmd(tmp, *timeout+30*time.Second, args...); err == nil {
			status, lived = "LIVED", lived+1
		} else if err == context.DeadlineExceeded {
			status, timedOut = "TIMED OUT", timedOut+1
		} else {
			status, killed = "KILLED", killed+1
		}
		if err := os.WriteFile(path, orig, 0o644); err != nil {
			fail(err)
		}
		if *verbose || status == "LIVED" {
			fmt.Printf("%12s CASE_%s at %s:%d\n", status, strings.ToUpper(m.kind), m.file, m.line)
		}
	}
	eff := 100.0
	if killed+timedOut+lived > 0 {
		eff = 100 * float64(killed+timedOut) / float64(killed+timedOut+lived)
	}
	fmt.Printf("case mutants %s: killed %d, lived %d, timed out %d, not viable %d; efficacy %.2f%%\n",
		pkg, killed, lived, timedOut, notViable, eff)
}

// find makes the mutants of pkg's non-test files, in file and line order.
func find(root, pkg string, skip *regexp.Regexp) ([]mutant, error) {
	fset := token.NewFileSet()
	files, err := filepath.Glob(filepath.Join(root, pkg, "*.go"))
	if err != nil {
		return nil, err
	}
	sort.Strings(files)
	var out []mutant
	for _, f := range files {
		rel, _ := filepath.Rel(root, f)
		if strings.HasSuffix(f, "_test.go") || (skip != nil && skip.MatchString(rel)) {
			continue
		}
		src, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		af, err := parser.ParseFile(fset, f, src, parser.SkipObjectResolution)
		if err != nil {
			return nil, err
		}
		off := func(p token.Pos) int { return fset.Position(p).Offset }
		line := func(p token.Pos) int { return fset.Position(p).Line }
		ast.Inspect(af, func(n ast.Node) bool {
			var body *ast.BlockStmt
			expr := false
			switch s := n.(type) {
			case *ast.SwitchStmt:
				body, expr = s.Body, true
			case *ast.TypeSwitchStmt:
				body = s.Body
			default:
				return true
			}
			clauses := body.List
			for i, st := range clauses {
				cc := st.(*ast.CaseClause)
				if len(cc.Body) > 0 {
					out = append(out, mutant{file: rel, line: line(cc.Pos()), kind: "body",
						start: off(cc.Colon) + 1, end: off(cc.Body[len(cc.Body)-1].End()), repl: []byte("\n")})
				}
				if !expr || i+1 == len(clauses) {
					continue
				}
				nx := clauses[i+1].(*ast.CaseClause)
				if len(cc.List) == 0 || len(nx.List) == 0 {
					continue // default stays where it is
				}
				a0, a1 := off(cc.List[0].Pos()), off(cc.List[len(cc.List)-1].End())
				b0, b1 := off(nx.List[0].Pos()), off(nx.List[len(nx.List)-1].End())
				// One replacement from a's labels to the end of b's: b's
				// labels, what lies between (a's body, b's "case"), a's.
				repl := append(append(append([]byte{}, src[b0:b1]...), src[a1:b0]...), src[a0:a1]...)
				out = append(out, mutant{file: rel, line: line(cc.Pos()), kind: "swap", start: a0, end: b1, repl: repl})
			}
			return true
		})
	}
	return out, nil
}

// copyModule copies the module's files (not .git) to dst.
func copyModule(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "node_modules") && rel != "." {
			return filepath.SkipDir
		}
		target := filepath.Join(dst, rel)
		switch {
		case d.IsDir():
			return os.MkdirAll(target, 0o755)
		case d.Type()&fs.ModeSymlink != 0:
			l, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return os.Symlink(l, target)
		case d.Type().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			info, err := d.Info()
			if err != nil {
				return err
			}
			return os.WriteFile(target, b, info.Mode().Perm())
		}
		return nil // sockets, fifos: not part of a module
	})
}

// goCmd runs the go command in dir, bounded by timeout. The tests may
// start process groups of their own: the whole group is killed at the end.
func goCmd(dir string, timeout time.Duration, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = dir
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	err := cmd.Run()
	if ctx.Err() == context.DeadlineExceeded {
		return buf.Bytes(), context.DeadlineExceeded
	}
	return buf.Bytes(), err
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "casemutants:", err)
	os.Exit(1)
}
