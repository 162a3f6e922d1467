package kmsg

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/picket-guard/picket/internal/snapshot"
	"github.com/picket-guard/picket/internal/testkit/kerneltest"
)

// follow reads /dev/kmsg from its end in the background, as picket run
// does, handing over each message of a known kind.
func follow(t *testing.T) (*Log, <-chan snapshot.KernelMessage) {
	t.Helper()
	r, err := Open("/dev/kmsg", FromEnd)
	if err != nil {
		t.Fatal(err)
	}
	l := NewLog(BootOptions("/proc"))
	ch := make(chan snapshot.KernelMessage, 100)
	ready := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		once := false
		l.Follow(ctx, r, func(m snapshot.KernelMessage) {
			select {
			case ch <- m:
			default:
			}
		}, func() {
			if !once {
				once = true
				close(ready)
			}
		})
	}()
	t.Cleanup(func() { cancel(); <-done; r.Close() })
	<-ready
	return l, ch
}

// wait returns the first message for which ok is true, within d.
func wait(t *testing.T, ch <-chan snapshot.KernelMessage, d time.Duration, ok func(snapshot.KernelMessage) bool) (snapshot.KernelMessage, time.Time) {
	t.Helper()
	timeout := time.After(d)
	for {
		select {
		case m := <-ch:
			if ok(m) {
				return m, time.Now()
			}
		case <-timeout:
			t.Fatalf("no such message from the kernel within %v", d)
		}
	}
}

// A fork loop in a pids cgroup at its limit: the kernel's refusal, tied to
// that cgroup, is read within two seconds.
func TestLiveForkRejected(t *testing.T) {
	kerneltest.RequireRoot(t)
	l, ch := follow(t)
	path, started := kerneltest.ForkRejected(t)
	m, at := wait(t, ch, 2*time.Second, func(m snapshot.KernelMessage) bool {
		return m.Kind == KindForkRejected && m.Fields.Cgroup == path
	})
	t.Logf("%q read %v after the fork loop started", m.Text, at.Sub(started))
	if m.Facility != 0 || m.Level != 6 {
		t.Errorf("facility %d level %d, want the kernel's info", m.Facility, m.Level)
	}
	k := l.Summary(time.Now()).Kind(KindForkRejected)
	if k.Count != 1 || k.LastHour != 1 || k.Fields.Cgroup != path {
		t.Errorf("summary %+v", k)
	}
	// The kernel's timestamp, turned into wall time, is when the fork
	// loop ran: after it started, before it was read.
	if k.Last.Before(started.Add(-10*time.Millisecond)) || k.Last.After(at.Add(10*time.Millisecond)) {
		t.Errorf("message time %v not between the loop's start %v and its reading %v: boot time or timestamps misread", k.Last, started, at)
	}
}

// A process over a small memory cgroup's limit is OOM-killed: its pid and
// comm come from the kernel's own line, its cgroup from the summary line.
func TestLiveOOMKill(t *testing.T) {
	kerneltest.RequireRoot(t)
	_, ch := follow(t)
	pid, comm, path, started := kerneltest.OOMKill(t)
	m, at := wait(t, ch, 5*time.Second, func(m snapshot.KernelMessage) bool {
		return m.Kind == KindOOMKill && m.Fields.PID == pid
	})
	t.Logf("%q read %v after dd started", m.Text, at.Sub(started))
	f := m.Fields
	if f.Comm != comm || f.Cgroup != path || !f.Memcg || f.UID == nil || *f.UID != 0 {
		t.Errorf("fields %+v, want comm %s, cgroup %s, memcg, uid 0", f, comm, path)
	}
}

// A record written to /dev/kmsg from userspace is shown as such and never
// counted as the kernel's word, even when it says the kernel's words.
func TestLiveUserRecord(t *testing.T) {
	kerneltest.RequireRoot(t)
	l, _ := follow(t)
	text := fmt.Sprintf("TCP: too many orphaned sockets (picket test %d, written from userspace)", time.Now().UnixNano())
	w, err := os.OpenFile("/dev/kmsg", os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	// Asking for the kernel's facility (<6> is kern.info) does not get it.
	// The newline closes the record: without one the kernel keeps it open
	// for a continuation, and readers see it only when the next one comes.
	_, err = w.Write([]byte("<6>" + text + "\n"))
	w.Close()
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Second)
	for {
		s := l.Summary(time.Now())
		if n := len(s.User.Recent); n > 0 && s.User.Recent[n-1].Text == text {
			if f := s.User.Recent[n-1].Facility; f != 1 {
				t.Errorf("facility %d, want 1 (user)", f)
			}
			if c := s.Kind(KindTCPOrphans).Count; c != 0 {
				t.Errorf("a userspace record counted as the kernel's: tcp-orphans = %d", c)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("userspace record not seen: %+v", s.User)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
