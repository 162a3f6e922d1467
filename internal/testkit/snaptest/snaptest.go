// Package snaptest gives tests a snapshot to work on: a live look at this
// machine, with the kit's one error policy, or one of the documents under
// testdata/snapshots. It is apart from package testkit because it imports
// the collector, whose own tests use testkit; collect's live tests are an
// external test package (collect_test) so they can use it too.
package snaptest

import (
	"context"
	"encoding/json"
	"os"
	"testing"

	"github.com/picket-guard/picket/internal/collect"
	"github.com/picket-guard/picket/internal/snapshot"
	"github.com/picket-guard/picket/internal/testkit"
)

// Live takes a full look at this machine, as `picket snapshot` does, and
// fails the test on any error the look reports.
//
// That is the one policy, for every package: Collect returns an error only
// for a kernel file it could not read or parse (a missing file or a
// process that exits mid-scan is not one), and on the machine the tests
// run on the kernel's files are in the kernel's own formats. An error is a
// bug in a reader; a test that went on with the partial snapshot would
// blame the check, the action or the page for what the collector missed.
func Live(t testing.TB) *snapshot.Snapshot {
	t.Helper()
	c, err := collect.New(collect.Options{})
	if err != nil {
		t.Fatalf("collect.New: %v", err)
	}
	s, err := c.Collect(context.Background(), collect.Full)
	if err != nil {
		t.Fatalf("live look: %v", err)
	}
	return s
}

// Fixture decodes testdata/snapshots/NAME.json (the moscow fixture's
// snapshot and the stories derived from it by testdata/gen/snapshots.py),
// afresh at each call, so a test may change what it gets.
func Fixture(t testing.TB, name string) *snapshot.Snapshot {
	t.Helper()
	b, err := os.ReadFile(testkit.RepoPath(t, "testdata/snapshots/"+name+".json"))
	if err != nil {
		t.Fatal(err)
	}
	var s snapshot.Snapshot
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatalf("snapshot %s: %v", name, err)
	}
	return &s
}
