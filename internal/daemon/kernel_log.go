package daemon

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"sync"
	"time"

	"github.com/picket-guard/picket/internal/kmsg"
	"github.com/picket-guard/picket/internal/snapshot"
	"github.com/picket-guard/picket/internal/term"
)

const (
	// kernelLogState is the file in the state dir that keeps the kernel
	// log's position and counts between runs.
	kernelLogState = "kernel-log.json"
	// kernelSaveEvery bounds how often the state is written while the
	// kernel talks; it is also written when picket stops.
	kernelSaveEvery = 2 * time.Second
	// kernelRetry is the wait before opening /dev/kmsg again after it
	// failed.
	kernelRetry = 30 * time.Second
	// kernelLogLines is how many messages of one kind a minute go to
	// picket's log; the rest are counted and said in one line.
	kernelLogLines = 10
)

// kernelLog follows /dev/kmsg while picket run runs: one goroutine parked
// in the runtime's poller between records (nothing at all while the
// kernel is quiet, no fork, no timer), a bounded kmsg.Log that every
// collection summarizes, and its position and counts saved in the state
// dir, so a restarted daemon counts and reports each message once.
type kernelLog struct {
	path, state string
	log         *kmsg.Log
	logger      *slog.Logger
	// said is called with each message of a known kind, after it is
	// logged: the daemon evaluates the rules that read the kernel's log.
	said func()

	saveMu   sync.Mutex
	lastSave time.Time
	timer    *time.Timer

	limMu sync.Mutex
	lim   map[string]*lineLimit

	// backlog: no state was restored, so the first records read are the
	// buffer since boot, not news: they are logged as one line per kind
	// once caught up. After a restart the first records are what came
	// while picket was away, and are logged one by one.
	backlog bool
	before  map[string]*backlogKind
}

type backlogKind struct {
	n    int
	last snapshot.KernelMessage
}

type lineLimit struct {
	minute     int64
	n, dropped int
}

// newKernelLog prepares the follower of ROOT/dev/kmsg, resuming from the
// state a previous run saved for this boot.
func newKernelLog(root, stateDir string, logger *slog.Logger, said func()) *kernelLog {
	opts := kmsg.BootOptions(filepath.Join(root, "proc"))
	opts.FromFirst, opts.Source = true, "/dev/kmsg"
	k := &kernelLog{path: filepath.Join(root, "dev", "kmsg"), state: filepath.Join(stateDir, kernelLogState),
		log: kmsg.NewLog(opts), logger: logger, said: said, lim: map[string]*lineLimit{}}
	k.backlog, k.before = true, map[string]*backlogKind{}
	st, err := kmsg.LoadState(k.state)
	switch {
	case err != nil:
		logger.Warn("kernel log state unreadable: reading the kernel's buffer from its start", "err", err)
	case st.BootID != "" && k.log.Restore(st):
		k.backlog = false
		logger.Info("kernel log resumed", "after_seq", st.NextSeq)
	case st.BootID != "":
		logger.Info("kernel log state is of another boot: reading the kernel's buffer from its start")
	}
	return k
}

// run follows the log until ctx is done, opening it again (after
// kernelRetry) when it fails.
func (k *kernelLog) run(ctx context.Context) {
	for {
		err := k.follow(ctx)
		if ctx.Err() != nil {
			return
		}
		k.log.Fail(err)
		k.logger.Warn("kernel log not followed; trying again", "path", k.path, "in", kernelRetry.String(), "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(kernelRetry):
		}
	}
}

func (k *kernelLog) follow(ctx context.Context) error {
	r, err := kmsg.Open(k.path, kmsg.FromFirst)
	if err != nil {
		return err
	}
	defer r.Close()
	k.log.Fail(nil)
	err = k.log.Follow(ctx, r, k.message, k.caughtUp)
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return ctx.Err()
	}
	return err
}

// message logs what the kernel said, escaped (names in it are chosen by
// whoever runs a process), at most kernelLogLines a minute per kind.
func (k *kernelLog) message(m snapshot.KernelMessage) {
	k.limMu.Lock()
	if k.backlog {
		b := k.before[m.Kind]
		if b == nil {
			b = &backlogKind{}
			k.before[m.Kind] = b
		}
		b.n, b.last = b.n+1, m
		k.limMu.Unlock()
		return // the first look, at start, evaluates these
	}
	k.limMu.Unlock()
	if k.allow(m.Kind) {
		attrs := []any{"kind", m.Kind, "seq", m.Seq, "at", m.Time, "message", said(m.Text)}
		f := m.Fields
		if f.PID > 0 {
			attrs = append(attrs, "pid", f.PID)
		}
		if f.Comm != "" {
			attrs = append(attrs, "comm", term.Escape(f.Comm))
		}
		if f.UID != nil {
			attrs = append(attrs, "uid", *f.UID)
		}
		if f.Cgroup != "" {
			attrs = append(attrs, "cgroup", term.Escape(f.Cgroup))
		}
		if f.Port > 0 {
			attrs = append(attrs, "port", f.Port)
		}
		k.logger.Warn("the kernel said", attrs...)
	}
	if k.said != nil {
		k.said()
	}
}

// said is a message for picket's log: the kernel's \xNN escapes decoded,
// then escaped once as every name picket prints.
func said(text string) string { return term.Escape(kmsg.Unescape([]byte(text))) }

// allow counts a line against its kind's minute; the first line of a new
// minute says how many of the last one were left out.
func (k *kernelLog) allow(kind string) bool {
	k.limMu.Lock()
	defer k.limMu.Unlock()
	minute := time.Now().Unix() / 60
	l := k.lim[kind]
	if l == nil {
		l = &lineLimit{minute: minute}
		k.lim[kind] = l
	}
	if l.minute != minute {
		if l.dropped > 0 {
			k.logger.Warn("kernel messages not logged one by one", "kind", kind, "count", l.dropped)
		}
		*l = lineLimit{minute: minute}
	}
	l.n++
	if l.n > kernelLogLines {
		l.dropped++
		return false
	}
	return true
}

// caughtUp is called each time the follower has read what was ready.
func (k *kernelLog) caughtUp() {
	k.limMu.Lock()
	if k.backlog {
		k.backlog = false
		for _, kind := range kmsg.Kinds() {
			if b := k.before[kind]; b != nil {
				k.logger.Info("the kernel said, before picket started", "kind", kind, "count", b.n, "last_at", b.last.Time,
					"last_message", said(b.last.Text))
			}
		}
		k.before = nil
	}
	k.limMu.Unlock()
	k.requestSave()
}

// requestSave is called each time the follower has read what was ready:
// the state is written at most every kernelSaveEvery, the last change
// always (a timer catches what came after the last write).
func (k *kernelLog) requestSave() {
	k.saveMu.Lock()
	defer k.saveMu.Unlock()
	if wait := kernelSaveEvery - time.Since(k.lastSave); wait > 0 {
		if k.timer == nil {
			k.timer = time.AfterFunc(wait, func() {
				k.saveMu.Lock()
				defer k.saveMu.Unlock()
				k.timer = nil
				k.saveLocked()
			})
		}
		return
	}
	k.saveLocked()
}

// save writes the state now (at shutdown).
func (k *kernelLog) save() {
	k.saveMu.Lock()
	defer k.saveMu.Unlock()
	if k.timer != nil {
		k.timer.Stop()
		k.timer = nil
	}
	k.saveLocked()
}

func (k *kernelLog) saveLocked() {
	k.lastSave = time.Now()
	if err := kmsg.SaveState(k.state, k.log.State()); err != nil {
		k.logger.Warn("kernel log state not saved: a restart may count messages again", "err", err)
	}
}
