package procid

import (
	"bytes"
	"testing"
)

// Fuzz targets for every parser here. They must never panic; a bad input is
// an error naming the field or line.

func FuzzParseStat(f *testing.F) {
	f.Add([]byte("2136 (cat) R 2131 2131 1035 0 -1 4194304 99 0 1 0 0 0 0 0 20 0 1 0 56043 3133440 385 18446744073709551615 94731493871616 0\n"))
	f.Add([]byte("1 (a) b) c) S 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 1 0 1 1 -1\n"))
	f.Add([]byte("77 (x\n66 (y) R 1) S 1 77 77 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 9 0 -1 0\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		var st Stat
		if err := ParseStat(b, &st); err == nil {
			if st.NumThreads < 0 {
				t.Fatalf("negative threads")
			}
			if !bytes.Contains(b, st.Comm) || bytes.Count(b[bytes.Index(b, st.Comm)+len(st.Comm):], []byte(")")) < 1 {
				t.Fatalf("comm %q not followed by its ')'", st.Comm)
			}
		}
	})
}

func FuzzParseStatusUID(f *testing.F) {
	f.Add([]byte("Name:\tcat\nUid:\t0\t1000\t0\t0\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = ParseStatusUID(b)
	})
}

func FuzzParsePasswd(f *testing.F) {
	f.Add([]byte("root:x:0:0:root:/root:/bin/bash\n# c\nalice:x:1000:1000::/home/alice:/bin/sh\n+::::::\n"))
	f.Add([]byte("a:x:4294967296:1\nb::1:x"))
	f.Fuzz(func(t *testing.T, b []byte) {
		acc, names := parsePasswd(b)
		for _, a := range acc {
			if a.name == "" || names[a.uid] == "" {
				t.Fatalf("account %+v without a name", a)
			}
		}
		_ = parseGroup(b)
	})
}
