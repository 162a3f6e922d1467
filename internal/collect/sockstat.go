package collect

import (
	"context"
	"errors"
	"io/fs"

	"github.com/picket-guard/picket/internal/snapshot"
)

// sockstatSource reads /proc/net/sockstat and sockstat6 through procfs.
// "TCP: ... orphan N ... mem P" are the two numbers behind the kernel's
// "Out of socket memory": orphans against tcp_max_orphans and
// pages against tcp_mem[2].
type sockstatSource struct{}

func (sockstatSource) name() snapshot.Source { return snapshot.SourceSockstat }

func (sockstatSource) update(_ context.Context, c *Collector, snap *snapshot.Snapshot) error {
	st, err := c.fs.NetSockstat()
	if errors.Is(err, fs.ErrNotExist) {
		return ErrNoData
	}
	if err != nil {
		return err
	}
	s := &snapshot.Sockstat{}
	if st.Used != nil {
		s.SocketsUsed = *st.Used
	}
	for _, p := range st.Protocols {
		switch p.Protocol {
		case "TCP":
			s.TCP.Inuse = p.InUse
			s.TCP.Orphan = deref(p.Orphan)
			s.TCP.TW = deref(p.TW)
			s.TCP.Alloc = deref(p.Alloc)
			s.TCP.MemPages, s.TCP.NoMem = deref(p.Mem), p.Mem == nil
		case "UDP":
			s.UDP.Inuse = p.InUse
			s.UDP.MemPages = deref(p.Mem)
		case "UDPLITE":
			s.UDPLite = p.InUse
		case "RAW":
			s.RawInuse = p.InUse
		case "FRAG":
			s.FragInuse = p.InUse
			s.FragMemory = deref(p.Memory)
		}
	}
	snap.Kernel.Sockstat = s

	st6, err := c.fs.NetSockstat6()
	if errors.Is(err, fs.ErrNotExist) {
		return nil // IPv6 disabled: only its part stays empty
	}
	if err != nil {
		return err
	}
	s6 := &snapshot.Sockstat6{}
	for _, p := range st6.Protocols {
		switch p.Protocol {
		case "TCP6":
			s6.TCP6 = p.InUse
		case "UDP6":
			s6.UDP6 = p.InUse
		case "UDPLITE6":
			s6.UDPLite6 = p.InUse
		case "RAW6":
			s6.Raw6 = p.InUse
		case "FRAG6":
			s6.Frag6 = p.InUse
		}
	}
	snap.Kernel.Sockstat6 = s6
	return nil
}

func deref(p *int) int {
	if p == nil {
		return 0
	}
	return *p
}
