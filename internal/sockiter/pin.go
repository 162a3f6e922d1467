package sockiter

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"
)

// DefaultPinDir is where picket pins its iterators: bpffs's usual mount,
// which systemd mounts at every boot (src/shared/mount-setup.c).
const DefaultPinDir = "/sys/fs/bpf/picket"

// DefaultPins is DefaultPinDir when /sys/fs/bpf is a BPF filesystem, else
// "" (nothing is pinned: picket mounts no filesystem of its own).
func DefaultPins() string {
	var st unix.Statfs_t
	if err := unix.Statfs(filepath.Dir(DefaultPinDir), &st); err != nil || uint32(st.Type) != unix.BPF_FS_MAGIC {
		return ""
	}
	return DefaultPinDir
}

// Pinned says whether dir holds this build's pins of the task iterator
// and of a socket pass, the fd walk's or the task_file iterator's (so that
// opening them costs next to nothing).
func Pinned(dir string) bool {
	if dir == "" {
		return false
	}
	has := func(prog string, object []byte) bool {
		_, err := os.Lstat(filepath.Join(dir, pinName(prog, object)))
		return err == nil
	}
	return has("task_info", _TaskBytes) && (has("task_fds", _TaskFdsBytes) || has("task_sockets", _TaskFileBytes))
}

// Options say how a program is loaded.
type Options struct {
	// Kernel is the decoding of the kernel's types the program is
	// relocated against (nil: one for this load alone).
	Kernel *Kernel
	// OpenFiles is the host's count of open files (the first field of
	// /proc/sys/fs/file-nr, which the caller reads): the fd walk's array
	// is sized for twice as many (0: its least).
	OpenFiles int
	// walkRecords sizes the fd walk's array instead (tests).
	walkRecords int
	// PinDir is a directory on a BPF filesystem where the attached
	// iterator is pinned for the next process, and where it is looked
	// for first ("" for neither). Loading costs ~30 ms of CPU and some
	// MiB of heap (the kernel's BTF decoded, the verifier's run); opening
	// a pin is one bpf(2) call. A one-shot command thus loads the
	// programs once per boot and picket version, and a daemon restarted
	// finds them too. The pin holds the program in the kernel (a few KiB)
	// until the directory is removed or the host reboots; its file is
	// root's, mode 0600 (bpf_obj_pin), and the directory is made 0700.
	PinDir string
}

// How an iterator was had, for Iter.How and Tasks.How.
const (
	HowLoaded = "loaded"
	HowPinned = "loaded and pinned"
	HowReused = "opened from its pin"
)

// attached is one program's iterator, with what releases it.
type attached struct {
	link *link.Iter
	objs interface{ Close() error } // nil for an iterator opened from its pin
	how  string                     // HowLoaded, HowPinned or HowReused, and why a pin was not used
	pin  string                     // the pin's path ("" when not pinned)
}

func (a *attached) close() error {
	var err error
	if a.link != nil {
		err = a.link.Close()
	}
	if a.objs != nil {
		err = errors.Join(err, a.objs.Close())
	}
	return err
}

// pinName is the pin of program prog compiled to object: its hash names
// the pin, so a build whose program differs (another picket version)
// never opens this one, and its record layout is the object's own.
func pinName(prog string, object []byte) string {
	h := sha256.Sum256(object)
	return fmt.Sprintf("%s-%x", prog, h[:8])
}

// attach opens the iterator of prog (what the object calls it) from its
// pin in o.PinDir, or loads it with load and attaches it, then pins it
// there. what names the program in errors.
func attach(o Options, what, prog string, object []byte, load func(*ebpf.CollectionOptions) (*ebpf.Program, interface{ Close() error }, error)) (*attached, error) {
	if why := Why(); why != "" {
		return nil, errors.New(why)
	}
	var pinWhy string
	var path string
	if o.PinDir != "" {
		path = filepath.Join(o.PinDir, pinName(prog, object))
		l, err := openPin(path, prog)
		if err == nil {
			return &attached{link: l, how: HowReused, pin: path}, nil
		}
		if !errors.Is(err, os.ErrNotExist) {
			pinWhy = err.Error()
		}
	}
	p, objs, err := load(o.Kernel.options())
	if err != nil {
		var ve *ebpf.VerifierError
		if errors.As(err, &ve) {
			return nil, fmt.Errorf("load the %s iterator: verifier: %v", what, ve.Cause)
		}
		if errors.Is(err, unix.EPERM) {
			return nil, fmt.Errorf("load the %s iterator (needs CAP_BPF and CAP_PERFMON, or CAP_SYS_ADMIN): %w", what, err)
		}
		return nil, fmt.Errorf("load the %s iterator: %w", what, err)
	}
	l, err := link.AttachIter(link.IterOptions{Program: p})
	if err != nil {
		objs.Close()
		return nil, fmt.Errorf("attach the %s iterator: %w", what, err)
	}
	a := &attached{link: l, objs: objs, how: HowLoaded}
	if o.PinDir == "" {
		return a, nil
	}
	if pinWhy == "" {
		pinWhy = pin(l, o.PinDir, path, prog)
	}
	if pinWhy != "" {
		a.how = HowLoaded + ", not pinned: " + pinWhy
		return a, nil
	}
	a.how, a.pin = HowPinned, path
	return a, nil
}

// openPin opens the pinned iterator at path, if it is one of prog.
func openPin(path, prog string) (*link.Iter, error) {
	if _, err := os.Lstat(path); err != nil {
		return nil, err
	}
	if err := ownDir(filepath.Dir(path)); err != nil {
		return nil, err
	}
	l, err := link.LoadPinnedLink(path, nil)
	if err != nil {
		return nil, fmt.Errorf("open the pin %s: %w", path, err)
	}
	it, ok := l.(*link.Iter)
	if !ok {
		l.Close()
		return nil, fmt.Errorf("the pin %s is no iterator", path)
	}
	// The pin's name says which object it was loaded from; its program's
	// name is checked too, cheaply, against a file put there by hand.
	if name, err := linkProgramName(it); err != nil || name != prog {
		it.Close()
		if err != nil {
			return nil, fmt.Errorf("the pin %s: %w", path, err)
		}
		return nil, fmt.Errorf("the pin %s runs %q, not %s", path, name, prog)
	}
	return it, nil
}

// linkProgramName is the name of the program the iterator runs.
func linkProgramName(l *link.Iter) (string, error) {
	info, err := l.Info()
	if err != nil {
		return "", err
	}
	p, err := ebpf.NewProgramFromID(info.Program)
	if err != nil {
		return "", err
	}
	defer p.Close()
	pi, err := p.Info()
	if err != nil {
		return "", err
	}
	return pi.Name, nil
}

// pin pins l at path in dir, making dir (0700) if it is not there, and
// removes the pins of prog's other builds. It says why it did not pin
// ("" when it did).
func pin(l *link.Iter, dir, path, prog string) string {
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return err.Error()
	}
	if err := ownDir(dir); err != nil {
		return err.Error()
	}
	if err := l.Pin(path); err != nil {
		// Another picket pinned the same program meanwhile: the next
		// process opens that one.
		if errors.Is(err, os.ErrExist) {
			return ""
		}
		return fmt.Sprintf("pin %s: %v", path, err)
	}
	pruneOtherBuilds(dir, prog, filepath.Base(path))
	return ""
}

// pruneOtherBuilds removes the pins of prog's other builds (another hash)
// but the newest: during an upgrade, a daemon of one build and the
// commands of another each find their own pin, instead of replacing each
// other's at every look and paying a load every time. A picket still
// running from a removed pin keeps its own link open.
func pruneOtherBuilds(dir, prog, own string) {
	ents, _ := os.ReadDir(dir)
	var newest string
	var newestTime time.Time
	var others []string
	for _, e := range ents {
		n := e.Name()
		if !strings.HasPrefix(n, prog+"-") || n == own {
			continue
		}
		others = append(others, n)
		if fi, err := e.Info(); err == nil && (newest == "" || fi.ModTime().After(newestTime)) {
			newest, newestTime = n, fi.ModTime()
		}
	}
	for _, n := range others {
		if n != newest {
			os.Remove(filepath.Join(dir, n))
		}
	}
}

// ownDir checks that dir is a directory of this user's that nobody else
// may write to: whoever can put a file there decides what the iterator
// reports.
func ownDir(dir string) error {
	var st unix.Stat_t
	if err := unix.Lstat(dir, &st); err != nil {
		return fmt.Errorf("%s: %w", dir, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return fmt.Errorf("%s is not a directory", dir)
	}
	if int(st.Uid) != os.Geteuid() || st.Mode&0o022 != 0 {
		return fmt.Errorf("%s is not picket's own (owner %d, mode %#o): not used", dir, st.Uid, st.Mode&0o7777)
	}
	return nil
}
