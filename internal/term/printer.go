package term

import (
	"fmt"
	"io"
)

// Printer writes a report to w and keeps the first write error: a report
// is many lines, and checking each one hides what it says. After the first
// error nothing more is written (a closed pipe stays closed), and Err
// returns it once the report is done.
type Printer struct {
	w   io.Writer
	err error
}

// NewPrinter returns a Printer writing to w.
func NewPrinter(w io.Writer) *Printer { return &Printer{w: w} }

// Write writes p unless an earlier write failed; a Printer is an io.Writer
// for what formats on its own (text/tabwriter, fmt.Fprint).
func (p *Printer) Write(b []byte) (int, error) {
	if p.err != nil {
		return 0, p.err
	}
	n, err := p.w.Write(b)
	p.err = err
	return n, err
}

// Printf formats as fmt.Printf does, unless an earlier write failed.
func (p *Printer) Printf(format string, a ...any) { fmt.Fprintf(p, format, a...) }

// Err is the first write error, or nil.
func (p *Printer) Err() error { return p.err }
