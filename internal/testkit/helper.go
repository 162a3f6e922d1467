package testkit

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"

	"github.com/picket-guard/picket/internal/testkit/hold"
)

// The test binary doubles as the helper processes a test needs (a socket
// holder, a parent that respawns its children, a process that drops root
// without exec): started with helperEnv=NAME, Main runs helper NAME
// instead of the tests.
const (
	helperEnv  = "PICKET_TEST_HELPER"
	socketsEnv = "PICKET_TEST_SOCKETS" // the holder's hold.Spec, in JSON
	sockets    = "sockets"
)

// Main is a package's TestMain: it runs the tests, or, when this binary
// was started as a helper (HelperEnv, HelperCommand, StartSockets), that
// helper, and exits with its status. helpers are the package's own, by
// name; "sockets" (the socket holder) is built in. after runs once the
// tests are done, before the exit: what they shared (a binary built once
// for all of them) is removed there.
//
//	func TestMain(m *testing.M) { testkit.Main(m, nil) }
func Main(m *testing.M, helpers map[string]func() int, after ...func()) {
	name, ok := os.LookupEnv(helperEnv)
	if !ok {
		code := m.Run()
		for _, f := range after {
			f()
		}
		os.Exit(code)
	}
	// What the helper starts is not a helper.
	os.Unsetenv(helperEnv)
	if name == sockets {
		var spec hold.Spec
		if err := json.Unmarshal([]byte(os.Getenv(socketsEnv)), &spec); err != nil {
			fmt.Println("socket holder spec:", err)
			os.Exit(2)
		}
		os.Exit(hold.Serve(spec))
	}
	h, ok := helpers[name]
	if !ok {
		fmt.Printf("no helper %q in this test binary\n", name)
		os.Exit(2)
	}
	os.Exit(h())
}

// HelperEnv is the environment entry that makes this test binary run
// helper name instead of its tests (for a command whose Env a test builds
// itself).
func HelperEnv(name string) string { return helperEnv + "=" + name }

// HelperCommand is this test binary as helper name, with this process's
// environment plus env. Were TestMain not to call Main, the binary would
// run no test ("-test.run=^$") rather than the whole suite again.
func HelperCommand(name string, env ...string) *exec.Cmd {
	c := exec.Command(os.Args[0], "-test.run=^$")
	c.Env = append(append(os.Environ(), HelperEnv(name)), env...)
	return c
}

// StartSockets starts a socket holder (see package hold) as attr says
// (nil: as the test itself; Cloneflags CLONE_NEWNET puts it in a network
// namespace of its own) and returns once it holds every socket of spec.
// It is stopped when the test ends, however it ends. The package's
// TestMain must call Main.
func StartSockets(t testing.TB, spec hold.Spec, attr *syscall.SysProcAttr) *exec.Cmd {
	t.Helper()
	b, err := json.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	cmd := HelperCommand(sockets, socketsEnv+"="+string(b))
	cmd.SysProcAttr = attr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start socket holder: %v", err)
	}
	t.Cleanup(func() {
		stdin.Close()
		cmd.Process.Kill()
		cmd.Wait()
	})
	line, err := bufio.NewReader(out).ReadString('\n')
	if strings.TrimSpace(line) != "ready" {
		t.Fatalf("socket holder %+v did not get ready: %q %v", spec, line, err)
	}
	return cmd
}
