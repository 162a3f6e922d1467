package rules

import (
	"reflect"
	"testing"
)

// markedSpec records, as act's exec spec does, which arguments began with
// a placeholder before rendering.
type markedSpec struct {
	Argv    []string
	leading []bool
}

func (s *markedSpec) MarkTemplates() {
	s.leading = make([]bool, len(s.Argv))
	for i, a := range s.Argv {
		s.leading[i] = len(a) >= 2 && a[:2] == "{{"
	}
}

// TestRenderSpecMarksTemplates: renderSpec lets a spec note where its
// placeholders were on its own copy, before the row's values (a process
// named "--version") are in, and leaves the configured spec alone.
func TestRenderSpecMarksTemplates(t *testing.T) {
	orig := &markedSpec{Argv: []string{"/bin/ls", "-l", "{{.comm}}"}}
	got, err := renderSpec(orig, map[string]any{"comm": "--version"})
	if err != nil {
		t.Fatal(err)
	}
	s := got.(*markedSpec)
	if !reflect.DeepEqual(s.Argv, []string{"/bin/ls", "-l", "--version"}) || !reflect.DeepEqual(s.leading, []bool{false, false, true}) {
		t.Errorf("rendered %q, marked %v", s.Argv, s.leading)
	}
	if orig.leading != nil || orig.Argv[2] != "{{.comm}}" {
		t.Errorf("the configured spec changed: %+v", orig)
	}
	// A value holding "{{" is data once rendered: it is not rendered again.
	got, err = renderSpec(&markedSpec{Argv: []string{"/bin/echo", "{{.comm}}"}}, map[string]any{"comm": "{{x"})
	if err != nil || got.(*markedSpec).Argv[1] != "{{x" {
		t.Errorf("a process named {{x: %v, %v", got, err)
	}
}
