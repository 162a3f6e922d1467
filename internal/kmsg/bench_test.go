package kmsg

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// burst is 10,000 records as a kernel in trouble writes them: mostly
// lines no catalogue entry knows (stack traces, OOM reports' task lists),
// one in ten a message it does (OOM kills with their summary lines, pids
// refusals, SYN floods, orphans), some with continuation lines.
func burst(n int) [][]byte {
	out := make([][]byte, 0, n)
	for i := 0; len(out) < n; i++ {
		seq, ts := len(out), 1000000+len(out)*50
		var r string
		switch i % 20 {
		case 0:
			r = fmt.Sprintf("6,%d,%d,-;oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg=/app%d,task_memcg=/app%d,task=worker,pid=%d,uid=1000\n", seq, ts, i, i, 1000+i)
		case 1:
			r = fmt.Sprintf("3,%d,%d,-;Memory cgroup out of memory: Killed process %d (worker) total-vm:26844kB, anon-rss:16128kB, file-rss:6648kB, shmem-rss:0kB, UID:1000 pgtables:88kB oom_score_adj:0\n", seq, ts, 1000+i-1)
		case 2:
			r = fmt.Sprintf("6,%d,%d,-;cgroup: fork rejected by pids controller in /user.slice/user-%d.slice\n", seq, ts, i)
		case 3:
			r = fmt.Sprintf("6,%d,%d,-;TCP: request_sock_TCP: Possible SYN flooding on port 0.0.0.0:%d. Sending cookies.\n", seq, ts, 80+i%3)
		case 4:
			r = fmt.Sprintf("6,%d,%d,-;TCP: too many orphaned sockets\n", seq, ts)
		case 5:
			r = fmt.Sprintf("5,%d,%d,-;virtio_blk virtio1: [vda] new size: %d 512-byte logical blocks\n SUBSYSTEM=virtio\n DEVICE=+virtio:virtio1\n", seq, ts, i)
		default:
			r = fmt.Sprintf("4,%d,%d,-; __handle_mm_fault+0xa64/0xf80 [%6d] %d\n", seq, ts, i, i*7)
		}
		out = append(out, []byte(r))
	}
	return out
}

// BenchmarkBurst10k is one op = 10,000 records parsed, matched and filed
// into a Log (its bounded rings and counts), as the follower does.
func BenchmarkBurst10k(b *testing.B) {
	recs := burst(10000)
	b.ReportAllocs()
	for b.Loop() {
		l := NewLog(Options{Boot: boot})
		for _, r := range recs {
			l.Add(r, nil)
		}
		if s := l.Summary(boot); s.Records != 10000 {
			b.Fatalf("records %d", s.Records)
		}
	}
}

// BenchmarkBurst10kRead adds the reading: the same 10,000 records from a
// stream file through a Reader, one record per read.
func BenchmarkBurst10kRead(b *testing.B) {
	path := filepath.Join(b.TempDir(), "kmsg")
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	for _, r := range burst(10000) {
		f.Write(r)
	}
	f.Close()
	b.ReportAllocs()
	for b.Loop() {
		r, err := Open(path, FromFirst)
		if err != nil {
			b.Fatal(err)
		}
		l := NewLog(Options{Boot: boot})
		if err := l.ReadBacklog(context.Background(), r); err != nil {
			b.Fatal(err)
		}
		r.Close()
		if s := l.Summary(boot); s.Records != 10000 {
			b.Fatalf("records %d", s.Records)
		}
	}
}
