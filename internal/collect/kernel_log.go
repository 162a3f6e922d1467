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

// kernelLogRead is the kernel log source run on its own goroutine, into a
// snapshot of its own (it sets only KernelLog) so that nothing is shared
// with the look's until wait.
type kernelLogRead struct {
	snap snapshot.Snapshot
	err  error
	done chan struct{}
}

func startKernelLog(ctx context.Context, c *Collector) *kernelLogRead {
	k := &kernelLogRead{done: make(chan struct{})}
	go func() {
		defer close(k.done)
		k.err = kernelLogSource{}.update(ctx, c, &k.snap)
	}()
	return k
}

// wait returns the source's error once it is done.
func (k *kernelLogRead) wait() error {
	<-k.done
	return k.err
}
