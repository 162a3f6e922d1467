package notify

import (
	"reflect"
	"testing"
)

// TestKindTable: each kind has a spec type of its own, builds a notifier
// that keeps its spec (for the spool), and only a log is local.
func TestKindTable(t *testing.T) {
	seen := map[reflect.Type]string{}
	specs := map[string]Spec{
		"alertmanager": &AlertmanagerSpec{URL: "http://127.0.0.1:9093"},
		"log":          &LogSpec{Stderr: true},
		"mail":         &MailSpec{To: []string{"root@localhost"}},
		"webhook":      &WebhookSpec{URL: "http://127.0.0.1:9000/x"},
	}
	for _, k := range kinds() {
		typ := reflect.TypeOf(k.spec())
		if other, dup := seen[typ]; dup {
			t.Errorf("%s and %s share the spec type %v", k.name, other, typ)
		}
		seen[typ] = k.name
		if k.local != (k.name == "log") {
			t.Errorf("%s: local = %v", k.name, k.local)
		}
		s, ok := specs[k.name]
		if !ok {
			t.Errorf("%s: no sample spec in this test", k.name)
			continue
		}
		n, err := New("x", s, testEnv(t))
		if err != nil {
			t.Fatalf("%s: %v", k.name, err)
		}
		if got := specOf(n); !reflect.DeepEqual(got, s) {
			t.Errorf("%s: the notifier keeps spec %#v, want %#v", k.name, got, s)
		}
		if kind, _ := specJSON(n); kind != k.name {
			t.Errorf("%s: spooled as kind %q", k.name, kind)
		}
	}
	if _, err := New("x", &posingSpec{}, testEnv(t)); err == nil {
		t.Error("New built a notifier from a spec no kind made")
	}
}

// posingSpec is a Spec no kind made.
type posingSpec struct{}

func (*posingSpec) Validate() error { return nil }
