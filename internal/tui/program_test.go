package tui

import (
	"context"
	"strings"
	"testing"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/picket-guard/picket/internal/snapshot"
)

// TestProgramKeys drives the bubbletea adapter with the messages a terminal
// produces: characters typed faster than they are read come as one
// message, and each is a key of its own; a paste never runs commands.
func TestProgramKeys(t *testing.T) {
	src := &twoSamples{snaps: []*snapshot.Snapshot{host(0, []snapshot.Group{grp("mail", 8, "imapd", 60), grp("root", 0, "cron", 1)}, nil)}}
	p := &program{ctx: context.Background(), m: NewModel(), src: src, style: Style{Interactive: true}}
	send := func(msg tea.Msg) tea.Cmd {
		_, cmd := p.Update(msg)
		return cmd
	}
	fetch := p.Init()
	send(fetch())
	send(tea.WindowSizeMsg{Width: 80, Height: 24})

	if cmd := send(tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune("/imap")}); cmd != nil {
		t.Fatalf("typing returned a command")
	}
	send(tea.KeyMsg{Type: tea.KeyEnter})
	if p.m.Filter() != "imap" || len(p.m.GroupRows()) != 1 {
		t.Fatalf("filter %q, %d rows", p.m.Filter(), len(p.m.GroupRows()))
	}
	// A paste outside the filter line: "q" in it must not quit.
	if cmd := send(tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune("xq"), Paste: true}); cmd != nil {
		t.Fatalf("a paste ran a command")
	}
	// Inside it, a paste is text.
	send(tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune("/")})
	send(tea.KeyMsg{Type: tea.KeyCtrlU})
	send(tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune("cr q"), Paste: true})
	if p.m.Filter() != "cr q" {
		t.Fatalf("pasted filter %q", p.m.Filter())
	}
	send(tea.KeyMsg{Type: tea.KeyEsc})
	if v := p.View(); !strings.Contains(v, `matching "imap"`) || !strings.HasPrefix(v, "picket top") {
		t.Errorf("view after esc:\n%s", v)
	}
	if cmd := send(tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune("q")}); cmd == nil || cmd() != tea.Quit() {
		t.Error("q did not quit")
	}
	if cmd := send(tea.KeyMsg{Type: tea.KeyCtrlC}); cmd == nil || cmd() != tea.Quit() {
		t.Error("ctrl+c did not quit")
	}
}
