package collect

import (
	"context"
	"errors"
	"io/fs"
	"path/filepath"
	"time"

	"github.com/picket-guard/picket/internal/kmsg"
	"github.com/picket-guard/picket/internal/snapshot"
)

// KernelLog gives a collection the kernel log's summary when something
// follows /dev/kmsg already (picket run's kmsg.Log). Without one, each
// collection reads the kernel's buffer once, from its oldest record.
type KernelLog interface {
	Summary(now time.Time) *snapshot.KernelLog
}

// kernelLogSource is /dev/kmsg (ROOT/dev/kmsg: a fixture tree's is a file
// of records in the same format).
type kernelLogSource struct{}

func (kernelLogSource) name() snapshot.Source { return snapshot.SourceKernelLog }

func (kernelLogSource) update(ctx context.Context, c *Collector, snap *snapshot.Snapshot) error {
	now := c.opts.Now()
	if c.opts.KernelLog != nil {
		snap.KernelLog = c.opts.KernelLog.Summary(now)
		return nil
	}
	opts := kmsg.BootOptions(c.proc)
	opts.Source = "/dev/kmsg"
	l, err := kmsg.ReadOnce(ctx, filepath.Join(c.root, "dev", "kmsg"), opts, now)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return ErrNoData
	case errors.Is(err, fs.ErrPermission):
		// Not root, kernel.dmesg_restrict=1: a limit of who runs picket,
		// as unreadable fds are, not a fault of the host.
		snap.KernelLog = &snapshot.KernelLog{Source: opts.Source, Mode: "backlog",
			Error: "/dev/kmsg is not readable: it needs root or CAP_SYSLOG (kernel.dmesg_restrict is 1)"}
		return nil
	case err != nil:
		snap.KernelLog = &snapshot.KernelLog{Source: opts.Source, Mode: "backlog", Error: err.Error()}
		return err
	}
	snap.KernelLog = l
	return nil
}
