package procid

import (
	"errors"
	"io/fs"
	"reflect"
	"strings"
	"testing"
	"time"
)

// Lines as Linux 6.18 writes them (do_task_stat), some with the comms a
// hostile process can give itself.
func TestParseStat(t *testing.T) {
	cases := []struct {
		name, line string
		want       Stat
	}{
		{"process", "23722 (cat) R 23719 23719 12636 34816 -1 4194304 96 0 0 0 0 0 0 0 20 0 1 0 79281 3133440 381 18446744073709551615 93948384788480 93948384808361 140730801588064 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0 93948384824368 93948384825984 93948560277504 140730801596927 140730801596947 140730801596947 140730801598443 0\n",
			Stat{PID: 23722, Comm: []byte("cat"), State: 'R', PPID: 23719, PGRP: 23719, Session: 12636, TTY: 34816, Flags: 4194304, NumThreads: 1, Starttime: 79281, RSS: 381}},
		{"kernel thread", "2 (kthreadd) S 0 0 0 0 -1 2129984 0 0 0 0 0 0 0 0 20 0 1 0 20 0 0 18446744073709551615 0 0 0 0 0 0 0 2147483647 0 1 0 0 0 1 0 0 0 0 0 0 0 0 0 0 0 0 0\n",
			Stat{PID: 2, Comm: []byte("kthreadd"), State: 'S', Flags: 2129984, NumThreads: 1, Starttime: 20}},
		{"parentheses and spaces", "4242 (a) S 1 (b) ) Z 1 4242 4242 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 3 0 5000 0 0 18446744073709551615 0\n",
			Stat{PID: 4242, Comm: []byte("a) S 1 (b) "), State: 'Z', PPID: 1, PGRP: 4242, Session: 4242, Flags: 4194560, NumThreads: 3, Starttime: 5000}},
		{"newline", "77 (x\n66 (y) R 1) S 1 77 77 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 9 0 -1 0\n",
			Stat{PID: 77, Comm: []byte("x\n66 (y) R 1"), State: 'S', PPID: 1, PGRP: 77, Session: 77, NumThreads: 1, Starttime: 9, RSS: -1}},
		{"empty comm", "8 () I 2 0 0 0 -1 69238880 0 0 0 0 0 0 0 0 0 -20 1 0 21 0 0 18446744073709551615 0\n",
			Stat{PID: 8, Comm: []byte{}, State: 'I', PPID: 2, Flags: 69238880, NumThreads: 1, Starttime: 21}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var st Stat
			if err := ParseStat([]byte(tc.line), &st); err != nil {
				t.Fatal(err)
			}
			if string(st.Comm) != string(tc.want.Comm) {
				t.Errorf("comm = %q, want %q", st.Comm, tc.want.Comm)
			}
			st.Comm, tc.want.Comm = nil, nil
			if !reflect.DeepEqual(st, tc.want) {
				t.Errorf("got  %+v\nwant %+v", st, tc.want)
			}
		})
	}
	var st Stat
	if ParseStat([]byte(cases[1].line), &st); !st.KernelThread() {
		t.Error("kthreadd is not a kernel thread")
	}
	if ParseStat([]byte(cases[0].line), &st); st.KernelThread() {
		t.Error("cat is a kernel thread")
	}
}

func TestParseStatErrors(t *testing.T) {
	for line, want := range map[string]string{
		"300 mysqld S 1\n":           `line 1: no "(comm)"`,
		"300 (mysqld) S 1 300\n":     "line 1: 5 fields, want at least 24",
		"300 (mysqld)":               `line 1: no "(comm)"`,
		"x (m) S 1 1 1 0 -1 0 0 0 0": "field 1 (pid)",
		"3 (m) SS 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 0 0 1 0 1 0 0\n":  "field 3 (state)",
		"3 (m) S one 1 1 0 -1 0 0 0 0 0 0 0 0 0 0 0 1 0 1 0 0\n": "field 4 (ppid)",
		"3 (m) S 1 1 1 0 -1 -4 0 0 0 0 0 0 0 0 0 0 1 0 1 0 0\n":  "field 9 (flags)",
		"3 (m) S 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 0 0 -1 0 1 0 0\n":  "field 20 (num_threads)",
		"3 (m) S 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 0 0 1 0 x 0 0\n":   "field 22 (starttime)",
		"3 (m) S 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 0 0 1 0 1 0 -\n":   "field 24 (rss)",
	} {
		var st Stat
		if err := ParseStat([]byte(line), &st); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseStat(%q) = %v, want %q", line, err, want)
		}
	}
}

// TestParseStatAllocs: the collector's walk parses every process's stat
// on every look; the parser must not allocate.
func TestParseStatAllocs(t *testing.T) {
	line := []byte("23722 (cat) R 23719 23719 12636 0 -1 4194304 96 0 0 0 0 0 0 0 20 0 1 0 79281 3133440 381 18446744073709551615 0\n")
	if n := testing.AllocsPerRun(100, func() {
		var st Stat // on the caller's stack, as in the walk
		if err := ParseStat(line, &st); err != nil || st.Starttime != 79281 {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("ParseStat allocates %v times per call", n)
	}
}

func TestParseStatusUID(t *testing.T) {
	status := "Name:\timapd\nUmask:\t0022\nState:\tS (sleeping)\nTgid:\t4242\nNgid:\t0\nPid:\t4242\nPPid:\t1\nTracerPid:\t0\nUid:\t0\t65534\t65534\t65534\nGid:\t65534\t65534\t65534\t65534\n"
	if uid, err := ParseStatusUID([]byte(status)); err != nil || uid != 65534 {
		t.Errorf("uid = %d, %v; want the effective 65534", uid, err)
	}
	for in, want := range map[string]string{
		"Name:\tx\nPid:\t1\n":       "no Uid line",
		"Name:\tx\nUid:\t1\tx\n":    "line 2: bad Uid line",
		"Uid:\t0\t4294967296\t0\t0": "line 1: bad Uid line",
	} {
		if _, err := ParseStatusUID([]byte(in)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseStatusUID(%q) = %v, want %q", in, err, want)
		}
	}
}

func TestStartTime(t *testing.T) {
	got := StartTime(1795395064, 12345)
	want := time.Unix(1795395064+123, 450_000_000) // 12345 ticks of 1/100 s
	if !got.Equal(want) || got.Location() != time.UTC {
		t.Errorf("StartTime = %v, want %v", got, want)
	}
}

// moscow is the fixture tree the collector's tests read too.
const moscow = "../../testdata/fixtures/moscow"

func TestFS(t *testing.T) {
	f, err := NewFS(moscow)
	if err != nil {
		t.Fatal(err)
	}
	btime, err := f.BootTime()
	if err != nil || btime != 1795395064 {
		t.Fatalf("boot time = %d, %v", btime, err)
	}
	p, err := f.Process(1)
	if err != nil {
		t.Fatal(err)
	}
	want := Process{PID: 1, PGRP: 1, Session: 1, UID: 0, Comm: "systemd", State: 'S', Flags: 4194560, Starttime: 2}
	if p != want {
		t.Errorf("pid 1 = %+v, want %+v", p, want)
	}
	if p.KernelThread() || !p.StartTime(btime).Equal(time.Unix(btime, 20_000_000)) {
		t.Errorf("pid 1: kernel thread %v, start %v", p.KernelThread(), p.StartTime(btime))
	}
	if k, err := f.Process(2); err != nil || !k.KernelThread() {
		t.Errorf("pid 2 (kthreadd) = %+v, %v; want a kernel thread", k, err)
	}
	if _, err := f.Process(99999); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a pid not in the tree: %v, want ErrNotExist", err)
	}
	if _, err := NewFS(t.TempDir()); err == nil {
		t.Error("NewFS on a root without proc succeeded")
	}
}
