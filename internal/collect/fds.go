package collect

import (
	"bytes"
	"math"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/picket-guard/picket/internal/proctext"
)

// sockRef is one socket fd: the socket's inode and the fd number it was
// found under (for the xattr fallback), and its kind when the BPF iterator
// found it (kindUnknown from the /proc walk: the tables, or the xattr, say).
// hashed is set by the BPF pass for a socket that the kernel has in its
// table of picket's own namespace: the dumpTable bit of that table.
type sockRef struct {
	ino    uint64
	fd     int32
	kind   sockKind
	hashed uint8
}

// probeMisses is how many absent fd numbers listFDs tries in a row before
// it lists the rest of fd/ instead.
const probeMisses = 4

// listFDs counts the fds of the process whose open fd/ is dfd and appends
// its sockets to w.socks. size is fd/'s st_size, which the kernel (since
// 6.2) sets to the number of open fds. The kernel hands out the lowest free
// fd, so fd tables are dense: readlinkat of "0", "1", ... until size fds
// are found needs no getdents, which on /proc/PID/fd costs a dcache lookup
// per entry before the readlinks do one each again. A gap of probeMisses
// absent numbers (a sparse table), or a size of 0 (an older kernel, or no
// fds), switches to getdents from that fd on.
func (w *procWorker) listFDs(dfd int, size int64) int {
	count, misses := 0, 0
	fd := 0
	for ; int64(count) < size; fd++ {
		if misses == probeMisses || fd > math.MaxInt32 {
			// /proc/PID/fd's readdir position is fd+2 (after . and ..).
			if _, err := unix.Seek(dfd, int64(fd)+2, 0); err != nil {
				return count
			}
			n := w.scanDirents(dfd)
			if n < 0 {
				return count
			}
			return count + n
		}
		w.name = append(strconv.AppendInt(w.name[:0], int64(fd), 10), 0)
		ln, err := readlinkat(dfd, &w.name[0], w.linkbuf)
		if err != nil {
			misses++ // not open (or closed meanwhile)
			continue
		}
		misses = 0
		count++
		w.addSocket(w.linkbuf[:ln], fd)
	}
	if size == 0 {
		if n := w.scanDirents(dfd); n > 0 {
			return n
		}
	}
	return count
}

// addSocket records fd when its link l is "socket:[INODE]".
func (w *procWorker) addSocket(l []byte, fd int) {
	if len(l) > 9 && string(l[:8]) == "socket:[" && l[len(l)-1] == ']' {
		if ino, ok := proctext.Dec(l[8 : len(l)-1]); ok && fd <= math.MaxInt32 {
			w.socks = append(w.socks, sockRef{ino: ino, fd: int32(fd)})
		}
	}
}

// readFDs counts a process's fds and appends the inodes of its sockets to
// w.socks. path is "PID/fd" NUL-terminated. It returns -1 when fd/ cannot be
// read (another user's process without CAP_SYS_PTRACE).
func (w *procWorker) readFDs(procfd int, path []byte) int {
	dfd, err := openat(procfd, path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC)
	if err != nil {
		return -1
	}
	defer unix.Close(dfd)
	return w.scanDirents(dfd)
}

// scanDirents lists the open fd/ dfd from its current position: it counts
// the entries and readlinks each, appending sockets to w.socks. It returns
// -1 when nothing could be read.
func (w *procWorker) scanDirents(dfd int) int {
	count := 0
	for {
		n, err := unix.Getdents(dfd, w.dirbuf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			if count == 0 {
				return -1
			}
			return count
		}
		if n == 0 {
			return count
		}
		b := w.dirbuf[:n]
		for len(b) >= 19 {
			// struct linux_dirent64: ino u64, off i64, reclen u16, type u8,
			// then the name, NUL-terminated: readlinkat takes it in place.
			reclen := int(b[16]) | int(b[17])<<8
			if reclen < 20 || reclen > len(b) {
				break
			}
			name := b[19:reclen]
			i := bytes.IndexByte(name, 0)
			b = b[reclen:]
			if i <= 0 || name[0] == '.' {
				continue
			}
			name = name[:i]
			count++
			ln, err := readlinkat(dfd, &name[0], w.linkbuf)
			if err != nil {
				continue // closed since getdents
			}
			if fd, ok := proctext.Dec(name); ok && fd <= math.MaxInt32 {
				w.addSocket(w.linkbuf[:ln], int(fd))
			}
		}
	}
}

// countDirents counts the fd entries of the open fd/ dfd (getdents only,
// no readlink); -1 when it cannot be read.
func countDirents(dfd int, buf []byte) int {
	count := 0
	for {
		n, err := unix.Getdents(dfd, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			if count == 0 {
				return -1
			}
			return count
		}
		if n == 0 {
			return count
		}
		eachDirent(buf[:n], func(name []byte) {
			if len(name) > 0 && name[0] != '.' {
				count++
			}
		})
	}
}

// protoKind asks the socket itself: the xattr "system.sockprotoname" that
// sockfs gives every socket inode ("UDP", "UNIX-STREAM", "AF_VSOCK"...).
// It is one getxattr per socket, so it is only the fallback for sockets the
// tables do not list; it works on the live /proc only (a fixture's fds are
// plain symlinks), and checks first that the fd still is the same socket.
func (s *procScanner) protoKind(pid int, sr sockRef) sockKind {
	if !s.c.live {
		return kindOther
	}
	path := s.c.proc + "/" + strconv.Itoa(pid) + "/fd/" + strconv.Itoa(int(sr.fd))
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil || st.Ino != sr.ino {
		return kindOther
	}
	n, err := unix.Getxattr(path, "system.sockprotoname", s.xattr)
	if err != nil || n == 0 {
		return kindOther
	}
	return kindOfProto(string(bytes.TrimRight(s.xattr[:n], "\x00")))
}

// kindOfProto maps a struct proto's name (net/*/: tcp_prot.name and so on)
// to a picket kind.
func kindOfProto(name string) sockKind {
	switch name {
	case "TCP", "TCPv6":
		return kindTCP
	case "UDP", "UDPv6":
		return kindUDP
	case "UNIX", "UNIX-STREAM":
		return kindUnix
	case "RAW", "RAWv6":
		return kindRaw
	case "NETLINK":
		return kindNetlink
	case "PACKET":
		return kindPacket
	}
	return kindOther
}

// readNSInode reads a namespace link ("net:[4026531840]"; path is
// NUL-terminated) and returns its inode, or 0 when it cannot be read.
func readNSInode(procfd int, path []byte, buf []byte) uint64 {
	n, err := readlinkat(procfd, &path[0], buf)
	if err != nil || n == 0 {
		return 0
	}
	l := buf[:n]
	i := bytes.IndexByte(l, '[')
	if i < 0 || l[len(l)-1] != ']' {
		return 0
	}
	v, _ := proctext.Dec(l[i+1 : len(l)-1])
	return v
}
