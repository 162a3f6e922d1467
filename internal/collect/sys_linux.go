package collect

import (
	"bytes"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The process walk's system calls, the one place of collect that uses
// unsafe: they take NUL-terminated paths held in buffers the walk reuses and
// read into its buffers, where x/sys/unix's wrappers would copy a string
// into a new allocation on every call, several times per process per look.

// eachDirent calls fn with the name of each struct linux_dirent64 in b
// (ino u64, off i64, reclen u16, type u8, then the NUL-terminated name).
func eachDirent(b []byte, fn func(name []byte)) {
	for len(b) >= 19 {
		reclen := int(b[16]) | int(b[17])<<8
		if reclen < 20 || reclen > len(b) {
			return
		}
		name := b[19:reclen]
		if i := bytes.IndexByte(name, 0); i >= 0 {
			name = name[:i]
		}
		fn(name)
		b = b[reclen:]
	}
}

// openat is openat(2) on a NUL-terminated path held in a reused buffer:
// x/sys/unix.Openat would copy a string into a new one on every call.
func openat(dirfd int, path []byte, flags int) (int, error) {
	for {
		r, _, e := unix.Syscall6(unix.SYS_OPENAT, uintptr(dirfd), uintptr(unsafe.Pointer(&path[0])), uintptr(flags), 0, 0, 0)
		if e == unix.EINTR {
			continue
		}
		if e != 0 {
			return -1, e
		}
		return int(r), nil
	}
}

// readlinkat is readlinkat(2) on a NUL-terminated name (a dirent's, in
// place), for the same reason.
func readlinkat(dirfd int, path *byte, buf []byte) (int, error) {
	r, _, e := unix.Syscall6(unix.SYS_READLINKAT, uintptr(dirfd), uintptr(unsafe.Pointer(path)), uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)), 0, 0)
	if e != 0 {
		return 0, e
	}
	return int(r), nil
}

// readAt reads a whole small file relative to dirfd into buf; path is
// NUL-terminated.
func readAt(dirfd int, path []byte, buf []byte) (int, error) {
	fd, err := openat(dirfd, path, unix.O_RDONLY|unix.O_CLOEXEC)
	if err != nil {
		return 0, err
	}
	defer unix.Close(fd)
	return readFD(fd, buf)
}

// readFD reads a small /proc file from fd into buf. stat and status are
// single-record seq_files: the kernel formats the whole file and hands all
// of it to the first read that has room, so a read that ends in a newline
// with room to spare is the whole file, and the read that would return 0 is
// skipped (one syscall less per file, per process).
func readFD(fd int, buf []byte) (int, error) {
	total := 0
	for total < len(buf) {
		n, err := unix.Read(fd, buf[total:])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return 0, err
		}
		if n == 0 {
			break
		}
		total += n
		if total < len(buf) && buf[total-1] == '\n' {
			break
		}
	}
	return total, nil
}
