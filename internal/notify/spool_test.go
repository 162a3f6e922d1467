package notify

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/picket-guard/picket/internal/alarm"
)

func openTestSpool(t *testing.T) (*spool, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "spool")
	sp, err := openSpool(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sp.close() })
	return sp, dir
}

// TestSpoolReplaysOldestFirst: whatever order the files were written in, a
// restart sends the oldest batch first (a resolve never overtakes its
// alarm), and every item comes back whole with its size on disk.
func TestSpoolReplaysOldestFirst(t *testing.T) {
	sp, dir := openTestSpool(t)
	base := testNow.UnixNano()
	var ids []string
	for i := range 4 {
		ids = append(ids, newID(base+int64(i)))
	}
	// Written newest first.
	for i := len(ids) - 1; i >= 0; i-- {
		b := stormBatch()
		b.Rule = "rule-" + ids[i][:20]
		n, err := sp.write(&spoolItem{Version: spoolVersion, ID: ids[i], Output: "ops", Created: testNow.Add(time.Duration(i)), Attempts: i, Batch: b})
		if err != nil || n <= 0 {
			t.Fatalf("write %s: %d %v", ids[i], n, err)
		}
	}
	items, err := sp.load(func(name string, err error) { t.Errorf("bad %s: %v", name, err) })
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for i, it := range items {
		got = append(got, it.ID)
		st, err := os.Stat(filepath.Join(dir, it.ID+".json"))
		if err != nil || st.Size() != it.size {
			t.Errorf("%s: size %d, on disk %v (%v)", it.ID, it.size, st, err)
		}
		if it.Attempts != i || it.Batch.Rule != "rule-"+it.ID[:20] || len(it.Batch.Alarms) != 3 || it.Output != "ops" {
			t.Errorf("%s came back as attempts %d, rule %q, %d alarms, output %q", it.ID, it.Attempts, it.Batch.Rule, len(it.Batch.Alarms), it.Output)
		}
		if idNanos(it.ID) != base+int64(i) {
			t.Errorf("idNanos(%s) = %d", it.ID, idNanos(it.ID))
		}
	}
	if !slices.Equal(got, ids) {
		t.Errorf("replay order %v, want %v", got, ids)
	}
}

// TestSpoolSetsAsideWhatItCannotSend: a file that parses but names no
// output, names another id than its file's, or is of another version is
// set aside as NAME.bad and reported, not sent and not retried forever.
func TestSpoolSetsAsideWhatItCannotSend(t *testing.T) {
	sp, dir := openTestSpool(t)
	good := newID(testNow.UnixNano())
	if _, err := sp.write(&spoolItem{Version: spoolVersion, ID: good, Output: "ops", Batch: stormBatch()}); err != nil {
		t.Fatal(err)
	}
	bad := map[string]string{
		"00000000000000000001-aaaa.json": `{"version":1,"id":"00000000000000000001-aaaa","output":""}`,
		"00000000000000000002-bbbb.json": `{"version":1,"id":"00000000000000000002-bbbb"}`,
		"00000000000000000003-cccc.json": `{"version":1,"id":"00000000000000000009-zzzz","output":"ops"}`,
		"00000000000000000004-dddd.json": `{"version":2,"id":"00000000000000000004-dddd","output":"ops"}`,
	}
	for name, body := range bad {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	var reported []string
	items, err := sp.load(func(name string, err error) {
		if err == nil {
			t.Errorf("%s reported without an error", name)
		}
		reported = append(reported, name)
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(items) != 1 || items[0].ID != good {
		t.Errorf("loaded %d items, want only %s", len(items), good)
	}
	slices.Sort(reported)
	var want []string
	for name := range bad {
		want = append(want, name)
	}
	slices.Sort(want)
	if !slices.Equal(reported, want) {
		t.Errorf("reported %v, want %v", reported, want)
	}
	files := spoolFiles(t, dir)
	for _, name := range want {
		if !slices.Contains(files, name+".bad") || slices.Contains(files, name) {
			t.Errorf("%s not set aside: %v", name, files)
		}
	}
}

// TestSpoolRemoveTwice: removing an item that is already gone (delivered
// by a retry that raced the expiry) is no error; a spool that cannot be
// written to says so.
func TestSpoolRemoveTwice(t *testing.T) {
	sp, dir := openTestSpool(t)
	id := newID(testNow.UnixNano())
	if _, err := sp.write(&spoolItem{Version: spoolVersion, ID: id, Output: "ops", Batch: alarm.Batch{Rule: "r"}}); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if err := sp.remove(id); err != nil {
			t.Fatalf("remove #%d: %v", i+1, err)
		}
	}
	if files := spoolFiles(t, dir); len(files) != 0 {
		t.Errorf("spool holds %v", files)
	}
	// A name that is a directory cannot be removed as a file: reported.
	if err := os.MkdirAll(filepath.Join(dir, "x.json", "y"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := sp.remove("x"); err == nil || !strings.Contains(err.Error(), "spool remove") {
		t.Errorf("removing a non-empty directory: %v", err)
	}
}

// TestSpoolIsExclusive: a second dispatcher on the same spool is refused
// (it would send everything twice) until the first closes it.
func TestSpoolIsExclusive(t *testing.T) {
	sp, dir := openTestSpool(t)
	if _, err := openSpool(dir); err == nil || !strings.Contains(err.Error(), "in use by another dispatcher") {
		t.Fatalf("second open: %v", err)
	}
	if err := sp.close(); err != nil {
		t.Fatal(err)
	}
	if err := sp.close(); err != nil {
		t.Errorf("closing twice: %v", err)
	}
	sp2, err := openSpool(dir)
	if err != nil {
		t.Fatalf("open after close: %v", err)
	}
	sp2.close()
}
