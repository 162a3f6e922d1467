package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/picket-guard/picket/internal/testkit/kerneltest"
)

// kernelRules reports every recent message of the two kinds the live
// tests provoke, as its own alarm, to a log file.
const kernelRules = `
rules:
  - name: fork-rejected
    table: kernel_messages
    where: kind == "fork-rejected"
    every: 1m
    level: warning
    message: "fork rejected in {{.cgroup}}"
    cases:
      - name: recent
        if: age < 3600 && !earlier_run
        then: [{log: {path: %[1]q}}]
  - name: oom-kill
    table: kernel_messages
    where: kind == "oom-kill"
    every: 1m
    level: warning
    message: "the OOM killer killed pid {{.pid}} ({{.comm}}) in {{.cgroup}}"
    cases:
      - name: recent
        if: age < 3600 && !earlier_run
        then: [{log: {path: %[1]q}}]
  - name: doctor
    table: findings
    every: 1m
    message: "{{.id}}: {{.title}}"
    cases:
      - name: bad
        level: warning
        if: rank >= 2
        then: [{log: {path: %[1]q}}]
`

// saidLines returns the "the kernel said" lines of picket run's JSON log
// (STATE/picket.log) whose field key has the value.
func saidLines(t *testing.T, state, key, value string) []map[string]any {
	t.Helper()
	b, _ := os.ReadFile(filepath.Join(state, "picket.log"))
	var out []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var m map[string]any
		if json.Unmarshal(sc.Bytes(), &m) != nil || m["msg"] != "the kernel said" {
			continue
		}
		if fmt.Sprint(m[key]) == value {
			out = append(out, m)
		}
	}
	return out
}

// kernelKind is one kind of the daemon's /api/v1/snapshot kernel_log.
type kernelKind struct {
	Kind   string `json:"kind"`
	Count  uint64 `json:"count"`
	Recent []struct {
		Seq    uint64 `json:"seq"`
		Fields struct {
			PID    int    `json:"pid"`
			Comm   string `json:"comm"`
			Cgroup string `json:"cgroup"`
			Memcg  bool   `json:"memcg"`
		} `json:"fields"`
	} `json:"recent"`
}

func (d *daemonProc) kernelKind(kind string) kernelKind {
	_, b := d.get("/api/v1/snapshot")
	var s struct {
		KernelLog struct {
			Available bool         `json:"available"`
			Kinds     []kernelKind `json:"kinds"`
		} `json:"kernel_log"`
	}
	json.Unmarshal(b, &s)
	for _, k := range s.KernelLog.Kinds {
		if k.Kind == kind {
			return k
		}
	}
	return kernelKind{}
}

// within polls ok every 20 ms for at most limit and says how long it took.
func within(t *testing.T, what string, limit time.Duration, since time.Time, ok func() bool) time.Duration {
	t.Helper()
	for time.Since(since) < limit {
		if ok() {
			return time.Since(since)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if ok() {
		return time.Since(since)
	}
	t.Fatalf("%s: not within %v", what, limit)
	return 0
}

// A fork loop in a pids cgroup at its limit while picket run watches: the
// kernel's refusal, tied to that cgroup, is in picket's log, its API and an
// alarm within two seconds.
func TestRunKernelForkRejected(t *testing.T) {
	kerneltest.RequireRoot(t)
	dir := t.TempDir()
	state, alarms := filepath.Join(dir, "state"), filepath.Join(dir, "alarms.log")
	cfg := filepath.Join(dir, "picket.yaml")
	writeConfig(t, cfg, fmt.Sprintf(kernelRules, alarms))
	d := startDaemon(t, "--config", cfg, "--state-dir", state, "--interval", "1m")
	d.waitFor("the kernel's buffer read", 10*time.Second, func() bool {
		_, b := d.get("/api/v1/snapshot")
		return bytes.Contains(b, []byte(`"mode":"follow"`))
	})

	path, started := kerneltest.ForkRejected(t)
	logged := within(t, "the message in picket's log", 2*time.Second, started, func() bool { return len(saidLines(t, state, "cgroup", path)) == 1 })
	api := within(t, "the message in /api/v1/snapshot", 2*time.Second, started, func() bool {
		for _, m := range d.kernelKind("fork-rejected").Recent {
			if m.Fields.Cgroup == path {
				return true
			}
		}
		return false
	})
	alarm := within(t, "the alarm", 2*time.Second, started, func() bool {
		b, _ := os.ReadFile(alarms)
		return bytes.Contains(b, []byte("fork rejected in "+path))
	})
	t.Logf("after the fork loop started: logged %v, in the API %v, alarm delivered %v", logged, api, alarm)
	if _, m := d.get("/metrics"); !bytes.Contains(m, []byte(`picket_kernel_messages_total{kind="fork-rejected"}`)) {
		t.Errorf("no picket_kernel_messages_total for fork-rejected")
	}
}

// A process over a small memory cgroup's limit is OOM-killed: picket names
// the victim's pid and comm from the kernel's line, and its cgroup.
func TestRunKernelOOMKill(t *testing.T) {
	kerneltest.RequireRoot(t)
	dir := t.TempDir()
	state, alarms := filepath.Join(dir, "state"), filepath.Join(dir, "alarms.log")
	cfg := filepath.Join(dir, "picket.yaml")
	writeConfig(t, cfg, fmt.Sprintf(kernelRules, alarms))
	d := startDaemon(t, "--config", cfg, "--state-dir", state, "--interval", "1m")
	d.waitFor("the kernel's buffer read", 10*time.Second, func() bool {
		_, b := d.get("/api/v1/snapshot")
		return bytes.Contains(b, []byte(`"mode":"follow"`))
	})

	pid, comm, path, started := kerneltest.OOMKill(t)
	logged := within(t, "the kill in picket's log", 2*time.Second, started, func() bool {
		return len(saidLines(t, state, "pid", fmt.Sprint(pid))) == 1
	})
	line := saidLines(t, state, "pid", fmt.Sprint(pid))[0]
	if line["comm"] != comm || line["cgroup"] != path || line["kind"] != "oom-kill" {
		t.Errorf("logged %v, want comm %s cgroup %s", line, comm, path)
	}
	found := false
	for _, m := range d.kernelKind("oom-kill").Recent {
		if m.Fields.PID == pid {
			found = true
			if m.Fields.Comm != comm || m.Fields.Cgroup != path || !m.Fields.Memcg {
				t.Errorf("API: %+v", m.Fields)
			}
		}
	}
	if !found {
		t.Errorf("the kill of pid %d not in the API", pid)
	}
	alarm := within(t, "the alarm", 5*time.Second, started, func() bool {
		b, _ := os.ReadFile(alarms)
		return bytes.Contains(b, []byte(fmt.Sprintf("killed pid %d (%s) in %s", pid, comm, path)))
	})
	// Doctor's verdict, raised by the kernel's line alone (cgroup-limits:
	// the memory cgroup's limit ran out): memory is fine now, the victim
	// is dead, its cgroup gone.
	want := fmt.Sprintf("killed pid %d (%s) in cgroup %s", pid, comm, path)
	finding := within(t, "cgroup-limits raised, naming the victim", 5*time.Second, started, func() bool {
		_, b := d.get("/api/v1/findings")
		return bytes.Contains(b, []byte(want))
	})
	t.Logf("after dd started: logged %v, alarm delivered %v, doctor's finding %v", logged, alarm, finding)
}

// picket run stopped in the middle and started again reports each message
// once: one while it ran, one while it was away, none twice, and the
// counts carry on.
func TestRunKernelRestart(t *testing.T) {
	kerneltest.RequireRoot(t)
	dir := t.TempDir()
	state, alarms := filepath.Join(dir, "state"), filepath.Join(dir, "alarms.log")
	cfg := filepath.Join(dir, "picket.yaml")
	writeConfig(t, cfg, fmt.Sprintf(kernelRules, alarms))
	follow := func(d *daemonProc) {
		d.waitFor("the kernel's buffer read", 10*time.Second, func() bool {
			_, b := d.get("/api/v1/snapshot")
			return bytes.Contains(b, []byte(`"mode":"follow"`))
		})
	}
	stop := func(d *daemonProc) {
		d.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-d.done:
			d.done <- err
		case <-time.After(20 * time.Second):
			t.Fatal("picket run did not stop after SIGTERM")
		}
	}

	alarmed := func(cg string) func() bool {
		return func() bool {
			b, _ := os.ReadFile(alarms)
			return bytes.Contains(b, []byte("fork rejected in "+cg))
		}
	}

	a := startDaemon(t, "--config", cfg, "--state-dir", state, "--interval", "1m")
	follow(a)
	first, started := kerneltest.ForkRejected(t)
	within(t, "the first message logged", 2*time.Second, started, func() bool { return len(saidLines(t, state, "cgroup", first)) == 1 })
	within(t, "the first alarm", 10*time.Second, started, alarmed(first))
	before := a.kernelKind("fork-rejected").Count
	beforeSeq := maxSeq(saidLines(t, state, "kind", "fork-rejected"))
	stop(a)

	second, _ := kerneltest.ForkRejected(t) // while picket is away

	b := startDaemon(t, "--config", cfg, "--state-dir", state, "--interval", "1m")
	follow(b)
	within(t, "the second message logged", 5*time.Second, time.Now(), func() bool { return len(saidLines(t, state, "cgroup", second)) == 1 })
	within(t, "the second alarm", 10*time.Second, time.Now(), alarmed(second))
	third, started := kerneltest.ForkRejected(t)
	within(t, "a third message logged", 2*time.Second, started, func() bool { return len(saidLines(t, state, "cgroup", third)) == 1 })
	within(t, "the third alarm", 10*time.Second, started, alarmed(third))
	stop(b)

	for _, cg := range []string{first, second, third} {
		if n := len(saidLines(t, state, "cgroup", cg)); n != 1 {
			t.Errorf("%s logged %d times, want once", cg, n)
		}
	}
	b2 := startDaemon(t, "--config", cfg, "--state-dir", state, "--interval", "1m")
	follow(b2)
	// Other tests of the machine's kernel (pids cgroups of their own) may
	// have their forks refused meanwhile: the count grows by every message
	// logged since the first look, ours and theirs, each once.
	var after, extra uint64
	agree := func() bool {
		after = b2.kernelKind("fork-rejected").Count
		seen := map[uint64]int{}
		extra = 0
		for _, m := range saidLines(t, state, "kind", "fork-rejected") {
			if sq := seqOf(m); sq > beforeSeq {
				if seen[sq]++; seen[sq] == 1 {
					extra++
				}
			}
		}
		return after == before+extra
	}
	for deadline := time.Now().Add(5 * time.Second); !agree() && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
	}
	if after != before+extra || extra < 2 {
		t.Errorf("fork-rejected counted %d after the restarts, want %d + %d logged since (2 of them this test's): a message counted twice or lost", after, before, extra)
	}
	// Each alarm once too: the rule skips what an earlier run reported.
	lb, _ := os.ReadFile(alarms)
	for _, cg := range []string{first, second, third} {
		if n := bytes.Count(lb, []byte("fork rejected in "+cg)); n != 1 {
			t.Errorf("%d alarms for %s, want 1:\n%s", n, cg, lb)
		}
	}
}

func seqOf(m map[string]any) uint64 {
	f, _ := m["seq"].(float64)
	return uint64(f)
}

func maxSeq(lines []map[string]any) uint64 {
	var max uint64
	for _, m := range lines {
		if sq := seqOf(m); sq > max {
			max = sq
		}
	}
	return max
}
