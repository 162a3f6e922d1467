package collect

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/picket-guard/picket/internal/snapshot"
)

// sysctlSource reads the kernel limits that the stories of docs/stories.md
// ran into: net.ipv4.tcp_mem and tcp_max_orphans (Out of socket memory),
// fs.file-nr/file-max and fs.nr_open (the socket leak), kernel.pid_max and
// threads-max (the imapd storm, the thrashing web server).
type sysctlSource struct{}

func (sysctlSource) name() snapshot.Source { return snapshot.SourceLimits }

func (sysctlSource) update(_ context.Context, c *Collector, snap *snapshot.Snapshot) error {
	k := &snap.Kernel
	var errs []error
	read := func(key string) []int64 {
		v, err := readSysctl(c.proc, key)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
		return v
	}
	one := func(key string) int64 {
		if v := read(key); len(v) > 0 {
			return v[0]
		}
		return 0
	}
	if v := read("net/ipv4/tcp_mem"); len(v) == 3 {
		k.TCPMemPages = v
	}
	k.TCPMaxOrphans = one("net/ipv4/tcp_max_orphans")
	if v := read("fs/file-nr"); len(v) == 3 {
		k.FileNr = &snapshot.FileNr{Allocated: v[0], Unused: v[1], Max: v[2]}
	}
	k.NrOpen = one("fs/nr_open")
	k.PidMax = one("kernel/pid_max")
	k.ThreadsMax = one("kernel/threads-max")
	return errors.Join(errs...)
}

// readSysctl reads a whitespace-separated list of integers from
// PROC/sys/KEY. procfs's SysctlInts parses into int and gives no position in
// its errors; these files are one line, so the line is always 1.
func readSysctl(proc, key string) ([]int64, error) {
	path := filepath.Join(proc, "sys", key)
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	f := strings.Fields(string(b))
	out := make([]int64, 0, len(f))
	for i, s := range f {
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%s:1: field %d: %w", path, i+1, err)
		}
		out = append(out, v)
	}
	return out, nil
}
