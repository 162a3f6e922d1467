package hostcap

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
)

// detectContainer tells the kind of container ROOT is, from the marks each
// runtime leaves (systemd's detect-virt looks at the same ones), and what
// told it. "" when none is recognised.
func detectContainer(root string) (kind, evidence string) {
	at := func(p string) string { return filepath.Join(root, p) }
	exists := func(p string) bool { _, err := os.Stat(at(p)); return err == nil }
	// OpenVZ/Virtuozzo: /proc/vz exists on the hardware node and in its
	// containers; only the node has /proc/bc.
	if exists("proc/vz") && !exists("proc/bc") {
		return "openvz", "/proc/vz without /proc/bc"
	}
	if exists("proc/user_beancounters") && !exists("proc/bc") {
		return "openvz", "/proc/user_beancounters without /proc/bc"
	}
	// systemd-nspawn, and any runtime that follows systemd's container
	// interface, writes its name here.
	if b, err := os.ReadFile(at("run/systemd/container")); err == nil {
		if k := strings.TrimSpace(string(b)); k != "" {
			return k, "/run/systemd/container says " + k
		}
	}
	if exists(".dockerenv") {
		return "docker", "/.dockerenv"
	}
	if exists("run/.containerenv") {
		return "podman", "/run/.containerenv"
	}
	// pid 1's environment (readable by root) carries container=NAME for
	// LXC, nspawn and podman.
	if b, err := os.ReadFile(at("proc/1/environ")); err == nil {
		for _, kv := range bytes.Split(b, []byte{0}) {
			if v, ok := bytes.CutPrefix(kv, []byte("container=")); ok && len(v) > 0 {
				return string(v), "pid 1's environment has container=" + string(v)
			}
		}
	}
	if b, err := os.ReadFile(at("proc/1/cgroup")); err == nil {
		for _, m := range []struct{ mark, kind string }{{"/docker/", "docker"}, {"/docker-", "docker"}, {"/lxc/", "lxc"},
			{"/lxc.payload", "lxc"}, {"/kubepods", "kubernetes"}, {"/libpod-", "podman"}} {
			if bytes.Contains(b, []byte(m.mark)) {
				return m.kind, "/proc/1/cgroup names " + strings.Trim(m.mark, "/-.")
			}
		}
	}
	return "", ""
}
