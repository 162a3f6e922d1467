package collect

import (
	"bytes"
	"testing"
)

// Fuzz targets for every parser written here rather than taken from procfs
// (those of /proc/PID/stat and status are procid's). They must never panic;
// a bad input is an error naming the line.

func FuzzParseBeancounters(f *testing.F) {
	f.Add([]byte("Version: 2.5\n       uid  resource held maxheld barrier limit failcnt\n      101:  numothersock 400 400 400 400 17\n            numproc 43 49 240 240 0\n"))
	f.Add([]byte("101: x 1 2 3 4 9223372036854775807\n:\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		rows, err := ParseBeancounters(b, "user_beancounters")
		if err == nil {
			for _, r := range rows {
				if r.UID == "" || r.Resource == "" {
					t.Fatalf("row without uid or resource: %+v", r)
				}
			}
		}
	})
}

func FuzzParseVMStat(f *testing.F) {
	f.Add([]byte("pswpin 1\npswpout 2\npgmajfault 3\n"))
	f.Add([]byte("pswpin -1\n\n x"))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = parseVMStat(b, "vmstat")
	})
}

func FuzzNetTable(f *testing.F) {
	f.Add([]byte(TCPHeaderForTest+"   0: 0100007F:0CEA 00000000:0000 0A 00000000:00000000 00:00000000 00000000    27        0 3001 1 0 100 0 0 10 0\n"), uint8(0))
	f.Add([]byte("Num RefCount Protocol Flags Type St Inode Path\n0: 2 0 10000 1 1 2001 /run/x\n"), uint8(6))
	f.Fuzz(func(t *testing.T, b []byte, which uint8) {
		nt := netTables[int(which)%len(netTables)]
		tr := tableReader{buf: make([]byte, 512)}
		tb := &nsTables{kinds: map[uint64]sockKind{}}
		_ = tr.scan(bytes.NewReader(b), "table", nt, tb)
	})
}
