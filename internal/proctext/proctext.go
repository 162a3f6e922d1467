// Package proctext holds the byte-level pieces of reading the kernel's text
// files under /proc (seq_file output): lines, unsigned decimal and hex
// numbers and whitespace-separated fields, taken from a caller's buffer without
// allocating. strconv wants a string, which would be one allocation per
// number on paths that read thousands of lines per look.
package proctext

import "bytes"

// Dec parses an unsigned decimal of at most 19 digits (so that it fits an
// int64 too); ok is false for anything else, the empty slice included.
func Dec(b []byte) (v uint64, ok bool) {
	if len(b) == 0 || len(b) > 19 {
		return 0, false
	}
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + uint64(c-'0')
	}
	return v, true
}

// Hex parses an unsigned hexadecimal of at most 16 digits, either case, no
// "0x".
func Hex(b []byte) (v uint64, ok bool) {
	if len(b) == 0 || len(b) > 16 {
		return 0, false
	}
	for _, c := range b {
		switch {
		case c >= '0' && c <= '9':
			v = v<<4 | uint64(c-'0')
		case c >= 'a' && c <= 'f':
			v = v<<4 | uint64(c-'a'+10)
		case c >= 'A' && c <= 'F':
			v = v<<4 | uint64(c-'A'+10)
		default:
			return 0, false
		}
	}
	return v, true
}

// Field returns the n-th (0-based) field of l, fields being separated by
// runs of spaces or tabs; nil when l has fewer.
func Field(l []byte, n int) []byte {
	i := 0
	for {
		for i < len(l) && (l[i] == ' ' || l[i] == '\t') {
			i++
		}
		if i == len(l) {
			return nil
		}
		j := i
		for j < len(l) && l[j] != ' ' && l[j] != '\t' {
			j++
		}
		if n == 0 {
			return l[i:j]
		}
		n--
		i = j
	}
}

// Line splits b after its first line: line is without its '\n', rest is
// what follows (nil after the last line).
func Line(b []byte) (line, rest []byte) {
	if i := bytes.IndexByte(b, '\n'); i >= 0 {
		return b[:i], b[i+1:]
	}
	return b, nil
}
