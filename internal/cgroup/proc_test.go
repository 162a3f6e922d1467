package cgroup

import (
	"reflect"
	"testing"
)

func TestPick(t *testing.T) {
	for _, tc := range []struct {
		name, file, primary string
		others              []string
	}{
		{"unified", "0::/system.slice/apache2.service\n", "/system.slice/apache2.service", nil},
		{"hybrid systemd", "12:pids:/system.slice/apache2.service\n11:memory:/system.slice/apache2.service\n" +
			"3:cpu,cpuacct:/system.slice\n1:name=systemd:/system.slice/apache2.service\n0::/system.slice/apache2.service\n",
			"/system.slice/apache2.service", []string{"/system.slice"}},
		// This machine: a hybrid host without systemd; the v1 pids cgroup
		// a test made, the memory cgroup of whoever started it.
		{"hybrid no systemd", "9:name=systemd:/\n8:pids:/pkt-fork\n6:freezer:/\n4:memory:/process_api/48ea\n1:cpu:/\n0::/\n",
			"/pkt-fork", []string{"/process_api/48ea"}},
		{"memory only", "8:pids:/\n4:memory:/process_api/48ea\n0::/\n", "/process_api/48ea", nil},
		{"legacy", "5:memory:/a\n4:pids:/b\n1:name=systemd:/\n", "/b", []string{"/a"}},
		{"root", "8:pids:/\n0::/\n", "/", nil},
		{"empty", "", "/", nil},
		{"colon in path", "0::/x:y/z\n", "/x:y/z", nil},
		{"garbage", "x:y\n::\n0::relative\n0::/ok\n", "/ok", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var p Pick
			EachLine([]byte(tc.file), p.Line)
			if got := string(p.Primary()); got != tc.primary {
				t.Errorf("primary %q, want %q", got, tc.primary)
			}
			var others []string
			for _, o := range p.Others() {
				others = append(others, string(o))
			}
			if !reflect.DeepEqual(others, tc.others) {
				t.Errorf("others %q, want %q", others, tc.others)
			}
			if got := ParseProcCgroup([]byte(tc.file)).Primary; got != tc.primary {
				t.Errorf("ParseProcCgroup's primary %q, want %q", got, tc.primary)
			}
		})
	}
}

func TestPickAllocs(t *testing.T) {
	b := []byte("12:pids:/system.slice/a.service\n11:memory:/system.slice/a.service\n3:cpu,cpuacct:/system.slice\n1:name=systemd:/system.slice/a.service\n0::/\n")
	n := testing.AllocsPerRun(100, func() {
		var p Pick
		EachLine(b, p.Line)
		p.EachOther(func([]byte) {})
		_ = p.Primary()
	})
	if n != 0 {
		t.Errorf("%v allocations per file, want 0", n)
	}
}

func TestPathsIn(t *testing.T) {
	ps := ParseProcCgroup([]byte("8:pids:/a\n3:cpu,cpuacct:/b\n1:name=systemd:/c\n0::/d\n"))
	for _, tc := range []struct {
		m    Mount
		want string
	}{
		{Mount{Version: V2}, "/d"},
		{Mount{Version: V1, Controllers: []string{"pids"}}, "/a"},
		{Mount{Version: V1, Controllers: []string{"cpu", "cpuacct"}}, "/b"},
		{Mount{Version: V1, Name: "systemd"}, "/c"},
	} {
		if got, _ := ps.In(&tc.m); got != tc.want {
			t.Errorf("In(%s) = %q, want %q", tc.m.Label(), got, tc.want)
		}
	}
}

func FuzzEachLine(f *testing.F) {
	f.Add([]byte("12:pids:/a\n0::/b:c\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		var p Pick
		EachLine(b, func(id uint64, c, path []byte) {
			if len(path) == 0 || path[0] != '/' {
				t.Fatalf("path %q", path)
			}
			p.Line(id, c, path)
		})
		if pr := p.Primary(); len(pr) == 0 || pr[0] != '/' {
			t.Fatalf("primary %q", pr)
		}
	})
}
