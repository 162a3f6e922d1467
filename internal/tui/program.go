package tui

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"

	"github.com/picket-guard/picket/internal/doctor"
	"github.com/picket-guard/picket/internal/snapshot"
)

// Options configure Run and WriteOnce.
type Options struct {
	Source Source
	// Interval is the time between refreshes (Run), or between the two
	// samples a plain frame's changes are measured over (WriteOnce; 0
	// takes one sample and leaves CHANGE blank).
	Interval time.Duration
	// Top caps the rows of each table (0: as many as fit; 10 in plain text).
	Top int
	// Env is the environment, for the locale: block characters and arrows
	// are drawn only under a UTF-8 locale, ASCII otherwise (an ssh session
	// with LANG=C). Nil means ASCII.
	Env []string
}

// Run shows the full-screen view on out, reading keys from in, until q or
// Ctrl-C (nil) or until ctx is done (its error). The terminal is restored
// (alternate screen left, cursor shown, cooked mode) before it returns.
func Run(ctx context.Context, o Options, in io.Reader, out io.Writer) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // a fetch still under way when q is pressed stops here
	m := NewModel()
	m.Interval, m.Top, m.Source = o.Interval, o.Top, o.Source.String()
	r := lipgloss.NewRenderer(out)
	prog := tea.NewProgram(&program{
		ctx:      ctx,
		m:        m,
		src:      o.Source,
		interval: o.Interval,
		style:    Style{Interactive: true, Color: true, ASCII: !utf8Locale(o.Env)},
		renderer: r,
	}, tea.WithContext(ctx), tea.WithInput(in), tea.WithOutput(out), tea.WithAltScreen())
	_, err := prog.Run()
	switch {
	case err == nil, errors.Is(err, tea.ErrInterrupted):
		return nil
	case ctx.Err() != nil:
		return ctx.Err()
	}
	return err
}

// program adapts a Model to bubbletea: fetches run as commands, one at a
// time, each started an interval after the previous one started (or at
// once when a collection took longer than the interval).
type program struct {
	ctx           context.Context
	m             *Model
	src           Source
	interval      time.Duration
	style         Style
	renderer      *lipgloss.Renderer
	width, height int
}

type fetchedMsg struct {
	snap *snapshot.Snapshot
	rep  *doctor.Report
	err  error
	took time.Duration
}

type tickMsg struct{}

func (p *program) fetch() tea.Msg {
	start := time.Now()
	snap, rep, err := p.src.Fetch(p.ctx)
	return fetchedMsg{snap, rep, err, time.Since(start)}
}

func (p *program) Init() tea.Cmd { return p.fetch }

func (p *program) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case tea.WindowSizeMsg:
		p.width, p.height = msg.Width, msg.Height
	case tea.KeyMsg:
		if msg.Paste && !p.m.editing {
			return p, nil // pasted text must not run commands
		}
		for _, k := range keyNames(msg) {
			if p.m.Key(k) {
				return p, tea.Quit
			}
		}
	case fetchedMsg:
		if p.ctx.Err() != nil {
			return p, nil
		}
		p.m.Update(msg.snap, msg.rep, msg.err)
		return p, tea.Tick(max(p.interval-msg.took, 0), func(time.Time) tea.Msg { return tickMsg{} })
	case tickMsg:
		return p, p.fetch
	}
	return p, nil
}

func (p *program) View() string {
	if p.width <= 0 || p.height <= 0 {
		return ""
	}
	return p.m.render(p.width, p.height, p.style, newPalette(p.style, p.renderer))
}

// keyNames turns a key press into the names Model.Key takes. Characters
// typed faster than they are read arrive as one message ("/topstorm"): each
// is a key of its own, so "/" starts the filter and the rest goes into it.
func keyNames(k tea.KeyMsg) []string {
	switch {
	case k.Type == tea.KeyRunes && !k.Alt:
		names := make([]string, 0, len(k.Runes))
		for _, r := range k.Runes {
			names = append(names, string(r))
		}
		return names
	case k.Type == tea.KeySpace:
		return []string{" "}
	}
	return []string{k.String()}
}

// WriteOnce prints one plain frame to w, width cells wide, with no colour
// and ASCII bars: `picket top --once`, or top's output when it is not a
// terminal. With an interval it samples twice, that far apart, so CHANGE
// and the doctor's rates have something to measure. It returns an error
// only when there was nothing to print; a partial snapshot's error is on
// the frame's last line.
func WriteOnce(ctx context.Context, w io.Writer, o Options, width int) error {
	m := NewModel()
	m.Interval, m.Top, m.Source = o.Interval, o.Top, o.Source.String()
	snap, rep, err := o.Source.Fetch(ctx)
	if snap == nil {
		if err == nil {
			err = errors.New("no snapshot")
		}
		return err
	}
	m.Update(snap, rep, err)
	if o.Interval > 0 {
		t := time.NewTimer(o.Interval)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		snap, rep, err := o.Source.Fetch(ctx)
		if snap != nil || err != nil {
			m.Update(snap, rep, err)
		}
	}
	_, err = fmt.Fprintln(w, m.Render(width, 0, Style{ASCII: true}))
	return err
}

// utf8Locale says whether the environment's locale is UTF-8, the way
// setlocale would pick LC_CTYPE: LC_ALL, then LC_CTYPE, then LANG.
func utf8Locale(env []string) bool {
	get := func(k string) string {
		for i := len(env) - 1; i >= 0; i-- {
			if v, ok := strings.CutPrefix(env[i], k+"="); ok {
				return v
			}
		}
		return ""
	}
	for _, k := range []string{"LC_ALL", "LC_CTYPE", "LANG"} {
		if v := get(k); v != "" {
			v = strings.ToLower(v)
			return strings.Contains(v, "utf-8") || strings.Contains(v, "utf8")
		}
	}
	return false
}
