package notify

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// TestSpoolFullDiskKeepsTheLastGoodCopy: on a disk that fills in the
// middle of a write (a tmpfs of 64 KiB, the state partition of a box that
// is dying of its logs), the write is reported, the item's last complete
// copy stays as it was (the torn temporary is never renamed over it), and
// no temporary is left behind; once room is made, the same item is written
// whole.
func TestSpoolFullDiskKeepsTheLastGoodCopy(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: mounts a small tmpfs to fill; CI runs as root")
	}
	dir := t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "size=64k,mode=0700"); err != nil {
		t.Fatalf("mount tmpfs: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
	sp, err := openSpool(filepath.Join(dir, "spool"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sp.close() })

	id := newID(testNow.UnixNano())
	small := &spoolItem{Version: spoolVersion, ID: id, Output: "ops", Created: testNow, Batch: stormBatch()}
	if _, err := sp.write(small); err != nil {
		t.Fatal(err)
	}
	big := &spoolItem{Version: spoolVersion, ID: id, Output: "ops", Created: testNow, Attempts: 1, Batch: stormBatch()}
	big.Batch.Alarms[0].Message = strings.Repeat("imapd storm ", 16<<10) // ~192 KiB: more than the disk holds
	_, err = sp.write(big)
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("write on a full disk: %v, want ENOSPC", err)
	}
	got, rerr := sp.read(id + ".json")
	if rerr != nil || got.Attempts != 0 || got.Batch.Alarms[0].Message != small.Batch.Alarms[0].Message {
		t.Fatalf("the last good copy after a failed write: %+v, %v", got, rerr)
	}
	if files := spoolFiles(t, sp.dir); len(files) != 1 || files[0] != id+".json" {
		t.Errorf("spool holds %v after the failed write, want only %s.json", files, id)
	}
	big.Batch.Alarms[0].Message = strings.Repeat("imapd storm ", 1<<10)
	if _, err := sp.write(big); err != nil {
		t.Fatalf("write once there is room: %v", err)
	}
	if got, err := sp.read(id + ".json"); err != nil || got.Attempts != 1 {
		t.Errorf("after the second write: %+v, %v", got, err)
	}
}
