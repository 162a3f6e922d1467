package daemon

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/picket-guard/picket/internal/kmsg"
)

// TestKernelLogFollowsAndResumes: picket run on a fixture tree follows its
// dev/kmsg (a file of records), shows what it read in every snapshot,
// saves its position when it stops, and a second run takes it up there:
// the same messages are not counted again.
func TestKernelLogFollowsAndResumes(t *testing.T) {
	root := "../../testdata/doctor/kernel-said"
	state := t.TempDir()
	var logs bytes.Buffer
	run := func() *Daemon {
		d, err := New(Options{LoadConfig: loader(cfgOK), Root: root, StateDir: state, Stderr: &logs, Listen: "off", NoProtect: true})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		go func() { done <- d.Run(ctx, nil) }()
		deadline := time.Now().Add(10 * time.Second)
		for {
			if s := d.Snapshot(); s != nil && s.KernelLog != nil && s.KernelLog.Mode == "follow" && s.KernelLog.NextSeq > 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the fixture's kernel log not followed:\n%s", logs.String())
			}
			time.Sleep(10 * time.Millisecond)
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		return d
	}
	d := run()
	l := d.Snapshot().KernelLog
	if k := l.Kind(kmsg.KindConntrackFull); k == nil || k.Count != 30 || l.ResumedSeq != 0 || l.User.Count != 1 {
		t.Fatalf("first run: %+v", l)
	}
	if !bytes.Contains(logs.Bytes(), []byte(`msg="the kernel said, before picket started" kind=conntrack-full count=30`)) {
		t.Errorf("the buffer since boot not summed up per kind:\n%s", logs.String())
	}
	st, err := kmsg.LoadState(filepath.Join(state, kernelLogState))
	if err != nil || st.NextSeq != l.NextSeq || st.Kinds[kmsg.KindConntrackFull].Count != 30 {
		t.Fatalf("saved state %+v %v", st, err)
	}
	if fi, err := os.Stat(filepath.Join(state, kernelLogState)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("state file %v %v", fi, err)
	}

	logs.Reset()
	d = run()
	l = d.Snapshot().KernelLog
	if k := l.Kind(kmsg.KindConntrackFull); k.Count != 30 || l.ResumedSeq != st.NextSeq || l.Records != st.Records {
		t.Errorf("second run counted again: conntrack-full %d, resumed at %d, records %d", k.Count, l.ResumedSeq, l.Records)
	}
	if bytes.Contains(logs.Bytes(), []byte("the kernel said")) {
		t.Errorf("the second run reported messages the first had:\n%s", logs.String())
	}
}
