package proctext

import (
	"strings"
	"testing"
)

func TestNumbers(t *testing.T) {
	for in, want := range map[string]uint64{"0": 0, "42": 42, "9223372036854775807": 1<<63 - 1, "0000000000000000001": 1} {
		if v, ok := Dec([]byte(in)); !ok || v != want {
			t.Errorf("Dec(%q) = %d, %v", in, v, ok)
		}
	}
	for _, in := range []string{"", "-1", "1 ", "x", "12345678901234567890"} {
		if v, ok := Dec([]byte(in)); ok {
			t.Errorf("Dec(%q) = %d, want not ok", in, v)
		}
	}
	for in, want := range map[string]uint64{"0A": 10, "ff": 255, "0100007F": 0x0100007f, "FFFFFFFFFFFFFFFF": 1<<64 - 1} {
		if v, ok := Hex([]byte(in)); !ok || v != want {
			t.Errorf("Hex(%q) = %x, %v", in, v, ok)
		}
	}
	for _, in := range []string{"", "0x1", "g", "10000000000000000"} {
		if v, ok := Hex([]byte(in)); ok {
			t.Errorf("Hex(%q) = %x, want not ok", in, v)
		}
	}
}

func TestField(t *testing.T) {
	l := []byte("  sl\tlocal_address  rem ")
	for n, want := range []string{"sl", "local_address", "rem", ""} {
		if got := string(Field(l, n)); got != want {
			t.Errorf("Field(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestLine(t *testing.T) {
	var got []string
	for b := []byte("a\n\nb c\nlast"); len(b) > 0; {
		var l []byte
		l, b = Line(b)
		got = append(got, string(l))
	}
	if strings.Join(got, "|") != "a||b c|last" {
		t.Errorf("lines = %q", got)
	}
	if l, rest := Line([]byte("x\n")); string(l) != "x" || len(rest) != 0 {
		t.Errorf("Line(x\\n) = %q, %q", l, rest)
	}
}

func TestNoAllocs(t *testing.T) {
	l := []byte("Uid:\t0\t65534\t65534\t65534")
	if n := testing.AllocsPerRun(100, func() { Dec(Field(l, 2)); Hex(Field(l, 1)) }); n != 0 {
		t.Errorf("%v allocations per call", n)
	}
}

func FuzzField(f *testing.F) {
	f.Add([]byte("a  b\tc"), 1)
	f.Fuzz(func(t *testing.T, b []byte, n int) {
		if n < 0 || n > 64 {
			return
		}
		Dec(Field(b, n))
		Hex(Field(b, n))
	})
}
