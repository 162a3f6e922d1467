package collect

import (
	"os"
	"path/filepath"
	"testing"
)

// TestSocketsInUse reads the first line of /proc/net/sockstat as the
// kernel prints it (sockstat_seq_show, net/ipv4/proc.c), and gives 0 for
// anything else.
func TestSocketsInUse(t *testing.T) {
	for _, c := range []struct {
		text string
		want int
	}{
		{"sockets: used 37350\nTCP: inuse 12007 orphan 0 tw 6000 alloc 12010 mem 9\nUDP: inuse 7320 mem 4\n", 37350},
		{"sockets: used 0\n", 0},
		{"sockets: used -4\n", 0},
		{"sockets: used many\n", 0},
		{"TCP: inuse 12007 orphan 0 tw 6000 alloc 12010 mem 9\n", 0},
		{"", 0},
	} {
		root := t.TempDir()
		if err := os.MkdirAll(filepath.Join(root, "net"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, "net", "sockstat"), []byte(c.text), 0o644); err != nil {
			t.Fatal(err)
		}
		if got := socketsInUse(root); got != c.want {
			t.Errorf("%q: %d, want %d", c.text, got, c.want)
		}
	}
	if got := socketsInUse(t.TempDir()); got != 0 {
		t.Errorf("no sockstat: %d", got)
	}
}

// TestTasksInUse reads the count that sizes the first look's task list
// from /proc/loadavg as fs/proc/loadavg.c prints it.
func TestTasksInUse(t *testing.T) {
	for _, c := range []struct {
		text string
		want int
	}{
		{"1.31 0.97 0.52 1/3122 14700\n", 3122},
		{"0.00 0.00 0.00 2/1 7\n", 1},
		{"0.00 0.00 0.00 1/-3 7\n", 0},
		{"0.00 0.00 0.00 1/many 7\n", 0},
		{"0.00 0.00 0.00 3122 7\n", 0},
		{"0.00 0.00\n", 0},
		{"", 0},
	} {
		root := t.TempDir()
		if err := os.WriteFile(filepath.Join(root, "loadavg"), []byte(c.text), 0o644); err != nil {
			t.Fatal(err)
		}
		if got := tasksInUse(root); got != c.want {
			t.Errorf("%q: %d, want %d", c.text, got, c.want)
		}
	}
	if got := tasksInUse(t.TempDir()); got != 0 {
		t.Errorf("no loadavg: %d", got)
	}
	if got := tasksInUse("/proc"); got < 1 {
		t.Errorf("this host's /proc/loadavg: %d tasks", got)
	}
}
