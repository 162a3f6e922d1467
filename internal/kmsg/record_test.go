package kmsg

import (
	"errors"
	"testing"
	"time"
)

func TestParseRecord(t *testing.T) {
	for _, tc := range []struct {
		name, in                string
		fac, lvl                int
		seq                     uint64
		ts                      time.Duration
		flags                   byte
		text, subsystem, device string
	}{
		{"plain", "6,339,1216360,-;tokio-rt-worker (71): drop_caches: 3\n", 0, 6, 339, 1216360 * time.Microsecond, '-', "tokio-rt-worker (71): drop_caches: 3", "", ""},
		{"continuation lines", "5,337,1203470,-;virtio_blk virtio1: [vda] new size\n SUBSYSTEM=virtio\n DEVICE=+virtio:virtio1\n",
			0, 5, 337, 1203470 * time.Microsecond, '-', "virtio_blk virtio1: [vda] new size", "virtio", "+virtio:virtio1"},
		{"caller field", "6,12,500,-,caller=T71;hello\n", 0, 6, 12, 500 * time.Microsecond, '-', "hello", "", ""},
		{"user facility", "12,40,7,-;written by a program\n", 1, 4, 40, 7 * time.Microsecond, '-', "written by a program", "", ""},
		{"no final newline", "3,1,2,c;cut short", 0, 3, 1, 2 * time.Microsecond, 'c', "cut short", "", ""},
		{"escaped text kept", `6,2,3,-;a\x0ab\\c` + "\n", 0, 6, 2, 3 * time.Microsecond, '-', `a\x0ab\\c`, "", ""},
		{"semicolon in message", "6,3,4,-;a;b\n", 0, 6, 3, 4 * time.Microsecond, '-', "a;b", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := ParseRecord([]byte(tc.in))
			if err != nil {
				t.Fatal(err)
			}
			if r.Facility != tc.fac || r.Level != tc.lvl || r.Seq != tc.seq || r.TS != tc.ts || r.Flags != tc.flags ||
				string(r.Text) != tc.text || string(r.Subsystem) != tc.subsystem || string(r.Device) != tc.device {
				t.Errorf("got fac %d lvl %d seq %d ts %v flags %c text %q sub %q dev %q", r.Facility, r.Level, r.Seq, r.TS, r.Flags,
					r.Text, r.Subsystem, r.Device)
			}
			if r.FromKernel() != (tc.fac == 0) {
				t.Errorf("FromKernel = %v", r.FromKernel())
			}
		})
	}
}

func TestParseRecordMalformed(t *testing.T) {
	for _, in := range []string{
		"", "no header\n", "6,1,2;three fields\n", "x,1,2,-;bad priority\n", "6,-1,2,-;bad seq\n",
		"6,1,z,-;bad ts\n", "6,1,2,;no flags\n", "99999,1,2,-;priority too large\n",
		"6,1,99999999999999999999999,-;ts overflows\n", "6,184467440737095516160,2,-;seq overflows\n",
	} {
		if _, err := ParseRecord([]byte(in)); !errors.Is(err, ErrMalformed) {
			t.Errorf("%q: err = %v, want ErrMalformed", in, err)
		}
	}
}

func TestUnescape(t *testing.T) {
	for in, want := range map[string]string{
		"plain":             "plain",
		`a\x0ab`:            "a\nb",
		`\x1b[31mred`:       "\x1b[31mred",
		`back\x5cslash`:     `back\slash`,
		`\xc3\xa9t\xc3\xa9`: "été",
		`trailing\x4`:       `trailing\x4`,
		`not\xzzhex`:        `not\xzzhex`,
		`\`:                 `\`,
	} {
		if got := Unescape([]byte(in)); got != want {
			t.Errorf("Unescape(%q) = %q, want %q", in, got, want)
		}
	}
}
