package fleettest

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/picket-guard/picket/internal/testkit"
)

func TestMain(m *testing.M) { testkit.Main(m, map[string]func() int{hostHelper: hostInit}) }

// hostHelper is the test binary as a host's first process: started by
// `ip netns exec NS unshare --pid --fork --mount-proc`, it is pid 1 of a
// pid namespace of its own, with that namespace's /proc, in the host's
// network namespace. So the picket it starts sees this host's processes
// and sockets only, as picket on a machine of its own would, and a storm
// started here is this host's alone. When it ends, the kernel kills
// whatever is left in its namespace (zap_pid_ns_processes): nothing
// outlives the test.
const hostHelper = "fleet-host"

// The helper's environment.
const (
	envPicket = "PICKET_FLEET_PICKET" // the picket binary
	envArgs   = "PICKET_FLEET_ARGS"   // its arguments, as JSON
	envLog    = "PICKET_FLEET_LOG"    // where its stdout and stderr go
	envImapd  = "PICKET_FLEET_IMAPD"  // a program whose comm is stormComm (testkit.NamedBin)
)

// hostInit starts picket and answers the test's commands, one a line on
// stdin, each with one line on stdout ("ok ..." or "error ..."):
//
//	storm N   start N processes named stormComm as nobody, once all have exec'd
//	kill      SIGKILL picket and reap it
//
// stdin closing (the test is over, or died) ends it.
func hostInit() int {
	var args []string
	if err := json.Unmarshal([]byte(os.Getenv(envArgs)), &args); err != nil {
		fmt.Println("error args:", err)
		return 2
	}
	logf, err := os.OpenFile(os.Getenv(envLog), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		fmt.Println("error", err)
		return 2
	}
	picket := exec.Command(os.Getenv(envPicket), args...)
	picket.Stdout, picket.Stderr = logf, logf
	if err := picket.Start(); err != nil {
		fmt.Println("error", err)
		return 2
	}
	var storm []*exec.Cmd
	defer func() {
		picket.Process.Kill()
		for _, c := range storm {
			c.Process.Kill()
			c.Wait()
		}
	}()
	fmt.Println("ok picket", picket.Process.Pid)
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		f := strings.Fields(in.Text())
		switch {
		case len(f) == 2 && f[0] == "storm":
			n, _ := strconv.Atoi(f[1])
			started, err := startStorm(os.Getenv(envImapd), n)
			storm = append(storm, started...)
			if err != nil {
				fmt.Println("error", err)
				continue
			}
			fmt.Println("ok storm", len(started))
		case len(f) == 1 && f[0] == "kill":
			picket.Process.Signal(syscall.SIGKILL)
			picket.Wait()
			fmt.Println("ok killed")
		default:
			fmt.Printf("error unknown command %q\n", in.Text())
		}
	}
	return 0
}

// stormComm is the storm's command name: an imapd of the fleet test's
// own. The hosts' pid namespaces hide the root namespace's processes from
// the hosts' pickets, not the other way round: a live test beside this
// one (go test runs packages in parallel) that counts the imapd of nobody
// on the machine must not count these.
const stormComm = "fleet-imapd"

// startStorm starts n sleepers named stormComm as nobody and waits until
// each has exec'd (its comm reads so in this namespace's /proc).
func startStorm(exe string, n int) ([]*exec.Cmd, error) {
	var cmds []*exec.Cmd
	for range n {
		c := exec.Command(exe, "600")
		c.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		if err := c.Start(); err != nil {
			return cmds, err
		}
		cmds = append(cmds, c)
	}
	deadline := time.Now().Add(10 * time.Second)
	for _, c := range cmds {
		for {
			b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", c.Process.Pid))
			if strings.TrimSpace(string(b)) == stormComm {
				break
			}
			if time.Now().After(deadline) {
				return cmds, fmt.Errorf("pid %d never became %s", c.Process.Pid, stormComm)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	return cmds, nil
}

// host is one host of the fleet as the test sees it: a network namespace
// on the bridge, and its first process (hostInit) running picket.
type host struct {
	name, ns, addr string
	log            string // picket's output
	cmd            *exec.Cmd
	in             io.WriteCloser
	replies        chan string
}

// start runs the host's first process in its namespaces and waits for
// picket to be started.
func (h *host) start(t *testing.T, picket, imapd string, args []string) {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	a, _ := json.Marshal(args)
	h.cmd = exec.Command("ip", "netns", "exec", h.ns, "unshare", "--pid", "--fork", "--mount-proc", "--kill-child", self, "-test.run=^$")
	h.cmd.Env = append(os.Environ(), testkit.HelperEnv(hostHelper), envPicket+"="+picket, envArgs+"="+string(a), envLog+"="+h.log, envImapd+"="+imapd)
	// The test dying takes unshare with it, and --kill-child the rest.
	h.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	h.cmd.Stderr = os.Stderr
	if h.in, err = h.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	out, err := h.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := h.cmd.Start(); err != nil {
		t.Fatalf("start host %s: %v", h.name, err)
	}
	h.replies = make(chan string, 4)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			h.replies <- sc.Text()
		}
		close(h.replies)
	}()
	t.Cleanup(func() {
		h.in.Close() // the helper ends, and its namespace with it
		done := make(chan struct{})
		go func() { h.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			h.cmd.Process.Kill()
			<-done
		}
	})
	h.reply(t, "start picket")
}

// do sends one command and waits for its reply.
func (h *host) do(t *testing.T, cmd string) string {
	t.Helper()
	if _, err := fmt.Fprintln(h.in, cmd); err != nil {
		t.Fatalf("host %s: %s: %v", h.name, cmd, err)
	}
	return h.reply(t, cmd)
}

func (h *host) reply(t *testing.T, what string) string {
	t.Helper()
	select {
	case r, ok := <-h.replies:
		if !ok || !strings.HasPrefix(r, "ok ") {
			b, _ := os.ReadFile(h.log)
			t.Fatalf("host %s: %s: %q\npicket's output:\n%s", h.name, what, r, b)
		}
		return r
	case <-time.After(20 * time.Second):
		t.Fatalf("host %s: %s: no answer in 20s", h.name, what)
	}
	return ""
}
