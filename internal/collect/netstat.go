package collect

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/picket-guard/picket/internal/proctext"
	"github.com/picket-guard/picket/internal/snapshot"
)

// netstatSource reads the TcpExt counters of /proc/net/netstat that back
// the kernel's messages (snapshot.Netstat). It is written here: procfs
// reads only /proc/PID/net/netstat, into float64s (a counter loses
// precision past 2^53) and without the line in its errors.
type netstatSource struct{}

func (netstatSource) name() snapshot.Source { return snapshot.SourceNetstat }

func (netstatSource) update(_ context.Context, c *Collector, snap *snapshot.Snapshot) error {
	path := filepath.Join(c.proc, "net", "netstat")
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return ErrNoData
	}
	if err != nil {
		return err
	}
	n, err := parseNetstat(b, path)
	if err != nil {
		return err
	}
	snap.Kernel.Netstat = n
	return nil
}

// parseNetstat reads the file's pairs of lines, "Proto: Name Name..." then
// "Proto: value value...", keeping the TcpExt counters snapshot.Netstat
// names. A counter this kernel does not have stays 0.
func parseNetstat(b []byte, path string) (*snapshot.Netstat, error) {
	out := &snapshot.Netstat{}
	fields := map[string]*uint64{
		"TCPAbortOnMemory": &out.AbortOnMemory, "TCPAbortOnTimeout": &out.AbortOnTimeout,
		"ListenOverflows": &out.ListenOverflows, "ListenDrops": &out.ListenDrops,
		"TCPReqQFullDoCookies": &out.ReqQFullDoCookies, "TCPReqQFullDrop": &out.ReqQFullDrop,
		"TCPTimeWaitOverflow": &out.TimeWaitOverflow, "TCPMemoryPressures": &out.MemoryPressures,
	}
	lines := bytes.Split(bytes.TrimRight(b, "\n"), []byte("\n"))
	if len(lines)%2 != 0 {
		return nil, fmt.Errorf("%s:%d: a names line without its values line", path, len(lines))
	}
	for i := 0; i < len(lines); i += 2 {
		names, values := bytes.Fields(lines[i]), bytes.Fields(lines[i+1])
		if len(names) == 0 || len(values) == 0 || !bytes.Equal(names[0], values[0]) || !bytes.HasSuffix(names[0], []byte(":")) {
			return nil, fmt.Errorf("%s:%d: want \"Proto: values\" after line %d's names", path, i+2, i+1)
		}
		if len(names) != len(values) {
			return nil, fmt.Errorf("%s:%d: %d values for %d names", path, i+2, len(values)-1, len(names)-1)
		}
		if string(names[0]) != "TcpExt:" {
			continue
		}
		for j := 1; j < len(names); j++ {
			p, ok := fields[string(names[j])]
			if !ok {
				continue
			}
			v, ok := proctext.Dec(values[j])
			if !ok {
				return nil, fmt.Errorf("%s:%d: %s: %q is not a counter", path, i+2, names[j], values[j])
			}
			*p = v
		}
	}
	return out, nil
}
