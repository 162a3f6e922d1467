package act

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// Reading the journal. None of these needs a Journal (`picket journal` and
// the API read while the daemon writes) and none reads more than it must:
// the tail is read backwards from the end, and a lookup by id decodes only
// the lines that name it.

// ReadJournal reads every entry of the live journal in dir (none when it
// does not exist yet), streaming. A line that does not parse (one torn by a
// crash), one longer than maxLine, or a half-written last line is skipped
// and named in the returned error; the other entries are still returned.
func ReadJournal(dir string) ([]Entry, error) {
	p := filepath.Join(dir, JournalFile)
	f, err := openRead(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []Entry
	var errs []error
	st, err := eachLine(f, func(n int, line []byte) {
		if len(bytes.TrimSpace(line)) == 0 {
			return
		}
		var e Entry
		if err := json.Unmarshal(line, &e); err != nil || e.ID == "" {
			errs = append(errs, fmt.Errorf("%s line %d: not a journal entry", p, n))
			return
		}
		out = append(out, e)
	})
	if st.long > 0 {
		errs = append(errs, fmt.Errorf("%s: skipped %d lines longer than %d bytes", p, st.long, maxLine))
	}
	if st.tail > 0 {
		errs = append(errs, fmt.Errorf("%s line %d: half-written (%d bytes, no end of line)", p, st.lines+1, st.tail))
	}
	if err != nil {
		errs = append(errs, fmt.Errorf("read journal: %w", err))
	}
	return out, errors.Join(errs...)
}

// ReadTail returns the last n entries written (n ≥ 1), newest first,
// reading backwards from the end of the journal and on into its rotated
// generations as far as it must.
func ReadTail(dir string, n int) ([]Entry, error) {
	out := make([]Entry, 0, min(n, 1024))
	err := scanBack(dir, func(e Entry) bool {
		out = append(out, e)
		return len(out) < n
	})
	return out, err
}

// TailActions returns the last n actions (every action the journal and its
// rotated generations hold when n ≤ 0), oldest first, as of now. It reads
// backwards until it has met the first entry of n actions: the later
// entries of an action (its result, its revert) follow its first in the
// file, so they were met on the way.
func TailActions(dir string, n int, now time.Time) ([]Action, error) {
	var es []Entry
	started := map[string]bool{}
	err := scanBack(dir, func(e Entry) bool {
		es = append(es, e)
		if (e.Phase == PhaseIntent || e.Phase == PhaseRefused) && !started[e.ID] {
			started[e.ID] = true
		}
		return n <= 0 || len(started) < n
	})
	kept := es[:0]
	for _, e := range es {
		if started[e.ID] { // an action begun before the first met is older than every one asked for
			kept = append(kept, e)
		}
	}
	slices.Reverse(kept)
	as := foldActions(kept, now, kinds())
	if n > 0 && len(as) > n {
		as = as[len(as)-n:]
	}
	return as, err
}

// generations lists the live journal of dir and its rotated generations
// that exist, newest first.
func generations(dir string) []string {
	out := []string{filepath.Join(dir, JournalFile)}
	for n := 1; ; n++ {
		p := filepath.Join(dir, JournalFile+"."+strconv.Itoa(n))
		if _, err := os.Lstat(p); err != nil {
			return out
		}
		out = append(out, p)
	}
}

func openRead(p string) (*os.File, error) {
	f, err := os.OpenFile(p, os.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open journal: %w", err)
	}
	return f, nil
}

// scanBack calls fn with every entry, newest first, over the live journal
// and then its rotated generations, until fn returns false. An entry
// carried into a newer file at rotation is skipped where the file it was
// copied from still exists (it is met there, in its place), and stands for
// the original where that file was deleted. Lines that are not entries are
// skipped and counted in the error.
func scanBack(dir string, fn func(Entry) bool) error {
	gens := generations(dir)
	bad, long := 0, 0
	var errs []error
	for i, p := range gens {
		olderKept := i+1 < len(gens)
		f, err := openRead(p)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			errs = append(errs, err)
			break
		}
		fi, err := f.Stat()
		if err != nil {
			f.Close()
			errs = append(errs, fmt.Errorf("stat %s: %w", p, err))
			break
		}
		stopped, l, err := eachLineBack(f, fi.Size(), func(line []byte) bool {
			if len(bytes.TrimSpace(line)) == 0 {
				return true
			}
			var e Entry
			if json.Unmarshal(line, &e) != nil || e.ID == "" {
				bad++
				return true
			}
			if e.Carried && olderKept {
				return true
			}
			return fn(e)
		})
		f.Close()
		long += l
		if err != nil {
			errs = append(errs, fmt.Errorf("read %s: %w", p, err))
		}
		if stopped || err != nil {
			break
		}
	}
	if bad > 0 || long > 0 {
		errs = append(errs, fmt.Errorf("journal %s: skipped %d lines that are not entries and %d longer than %d bytes", dir, bad, long, maxLine))
	}
	return errors.Join(errs...)
}

// entriesOf returns the entries of action id, oldest first, from every
// generation kept. Only lines holding the id are decoded.
func entriesOf(dir, id string) ([]Entry, error) {
	key, _ := json.Marshal(id)
	needle := append([]byte(`"id":`), key...)
	gens := generations(dir)
	var out []Entry
	var errs []error
	for i := len(gens) - 1; i >= 0; i-- {
		olderKept := i+1 < len(gens)
		f, err := openRead(gens[i])
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		_, err = eachLine(f, func(_ int, line []byte) {
			if !bytes.Contains(line, needle) {
				return
			}
			var e Entry
			if json.Unmarshal(line, &e) == nil && e.ID == id && !(e.Carried && olderKept) {
				out = append(out, e)
			}
		})
		f.Close()
		if err != nil {
			errs = append(errs, fmt.Errorf("read %s: %w", gens[i], err))
		}
	}
	return out, errors.Join(errs...)
}

// lineStats is what eachLine read.
type lineStats struct {
	consumed int64 // bytes up to and including the last '\n'
	lines    int   // complete lines, skipped ones included
	long     int   // lines skipped for being longer than maxLine
	tail     int64 // bytes after the last '\n': a line being written, or torn
}

// eachLine calls fn with every complete line of r and its number (from
// 1), without its '\n'. A line longer than maxLine is skipped (and
// counted) without being held in memory; what follows the last '\n' is
// left out. fn must not keep line.
func eachLine(r io.Reader, fn func(n int, line []byte)) (lineStats, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	var st lineStats
	var pending int64 // bytes of the line under way
	var acc []byte    // the line under way, when it spans buffers
	skip := false
	for {
		chunk, err := br.ReadSlice('\n')
		if err == nil {
			st.consumed += pending + int64(len(chunk))
			pending = 0
			st.lines++
			line := chunk[:len(chunk)-1]
			if acc != nil {
				acc = append(acc, line...)
				line, acc = acc, nil
			}
			if skip || len(line) > maxLine {
				skip = false
				st.long++
				continue
			}
			fn(st.lines, line)
			continue
		}
		pending += int64(len(chunk))
		if errors.Is(err, bufio.ErrBufferFull) {
			if !skip && len(acc)+len(chunk) > maxLine {
				skip, acc = true, nil
			} else if !skip {
				acc = append(acc, chunk...)
			}
			continue
		}
		st.tail = pending
		if errors.Is(err, io.EOF) {
			return st, nil
		}
		return st, err
	}
}

// eachLineBack calls fn with the complete lines of f's first size bytes,
// the last first, until fn returns false (stopped is then true). What
// follows the last '\n' (a line being written, or torn) is left out; a
// line longer than maxLine is skipped and counted. fn must not keep line.
func eachLineBack(f io.ReaderAt, size int64, fn func(line []byte) bool) (stopped bool, long int, err error) {
	const chunk = 64 << 10
	buf := make([]byte, chunk)
	// The last '\n' ends the last complete line.
	end := size
	for end > 0 {
		start := max(end-chunk, 0)
		b := buf[:end-start]
		if _, err := f.ReadAt(b, start); err != nil && !errors.Is(err, io.EOF) {
			return false, 0, err
		}
		if i := bytes.LastIndexByte(b, '\n'); i >= 0 {
			end = start + int64(i)
			break
		}
		end = start
	}
	if end == 0 {
		var one [1]byte
		if _, err := f.ReadAt(one[:], 0); err != nil || one[0] != '\n' {
			return false, 0, nil // no complete line at all
		}
	}
	// [0, pos) is unread; acc is the end of the line under way (which ends
	// at the '\n' found last), read from later chunks.
	pos := end
	var acc []byte
	skip := false
	emit := func(line []byte) bool {
		if skip || len(line) > maxLine {
			skip = false
			long++
			return true
		}
		return fn(line)
	}
	for pos > 0 {
		start := max(pos-chunk, 0)
		b := buf[:pos-start]
		if _, err := f.ReadAt(b, start); err != nil && !errors.Is(err, io.EOF) {
			return false, long, err
		}
		for {
			i := bytes.LastIndexByte(b, '\n')
			if i < 0 {
				if !skip && len(acc)+len(b) > maxLine {
					skip, acc = true, nil
				} else if !skip {
					acc = append(append(make([]byte, 0, len(b)+len(acc)), b...), acc...)
				}
				break
			}
			line := b[i+1:]
			if acc != nil {
				line = append(append(make([]byte, 0, len(line)+len(acc)), line...), acc...)
				acc = nil
			}
			if !emit(line) {
				return true, long, nil
			}
			b = b[:i]
		}
		pos = start
	}
	// The first line of the file.
	if !emit(acc) {
		return true, long, nil
	}
	return false, long, nil
}
