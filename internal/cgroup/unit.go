package cgroup

import (
	"strings"
)

// unitSuffixes are the systemd unit types that own cgroups
// (systemd.resource-control(5): slices, scopes, services, sockets, mounts
// and swaps).
var unitSuffixes = []string{".service", ".scope", ".slice", ".socket", ".mount", ".swap"}

// IsUnitName reports whether s is a systemd unit name that owns a cgroup:
// a valid name (unit_name_is_valid() in src/basic/unit-name.c: at most 255
// bytes of [A-Za-z0-9:_.\-@], escapes included) with one of the cgroup
// unit types. A directory in a delegated subtree may be named anything; a
// name systemd would never make is not taken for a unit.
func IsUnitName(s string) bool {
	if len(s) == 0 || len(s) > 255 {
		return false
	}
	suffix := ""
	for _, x := range unitSuffixes {
		if strings.HasSuffix(s, x) && len(s) > len(x) {
			suffix = x
			break
		}
	}
	if suffix == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte(":_.-@\\", c) >= 0) {
			return false
		}
	}
	return true
}

// Unit is the systemd unit a cgroup path belongs to: its innermost
// component that is a unit name (apache2.service, session-3.scope,
// user@1000.service, user-1000.slice, docker-ID.scope); "" when none is
// (a cgroupfs container path such as /docker/ID, or the root). A cgroup a
// service made below its own (a delegated subtree) belongs to the service.
func Unit(path string) string {
	for path != "" && path != "/" {
		i := strings.LastIndexByte(path, '/')
		if c := path[i+1:]; IsUnitName(c) {
			return c
		}
		path = path[:max(i, 0)]
	}
	return ""
}

// UserManager is the uid of the user manager (user@UID.service) a cgroup
// path lies under, "" when none: a unit below it is that user's
// (`systemctl --user`), not the system manager's.
func UserManager(path string) string {
	for _, c := range strings.Split(path, "/") {
		if u, ok := strings.CutPrefix(c, "user@"); ok {
			if uid, ok := strings.CutSuffix(u, ".service"); ok && isDigits(uid) {
				return uid
			}
		}
	}
	return ""
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// Container is what a cgroup path says of the container it is.
type Container struct {
	// Runtime is docker, podman, containerd, cri-o, lxc, or kubernetes
	// (a kubelet's cgroupfs path, which does not say the runtime).
	Runtime string
	// ID is the container's id (64 hex digits; an LXC container's name);
	// "" for a pod's own cgroup.
	ID string
	// Pod is the Kubernetes pod's UID, with dashes, when the path is a
	// kubelet's.
	Pod string
}

// scopePrefixes map a systemd scope's prefix to the runtime that makes it:
// docker-ID.scope (dockerd with the systemd cgroup driver), libpod-ID.scope
// (podman), cri-containerd-ID.scope (containerd's CRI plugin), crio-ID.scope
// (CRI-O), nerdctl-ID.scope (containerd's nerdctl). The -conmon- scopes of
// podman and CRI-O hold the container's monitor, not the container.
var scopePrefixes = []struct{ prefix, runtime string }{
	{"cri-containerd-", "containerd"},
	{"nerdctl-", "containerd"},
	{"docker-", "docker"},
	{"libpod-", "podman"},
	{"crio-", "cri-o"},
}

// ContainerOf reads the container a cgroup path is, or is inside: the
// innermost component that names one. Paths from real hosts:
//
//	/docker/ID                                                      docker, cgroupfs driver
//	/system.slice/docker-ID.scope                                   docker, systemd driver
//	/machine.slice/libpod-ID.scope/container                        podman
//	/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-ID.scope   rootless podman
//	/kubepods/burstable/podUID/ID                                   kubelet, cgroupfs driver
//	/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-podUID.slice/cri-containerd-ID.scope
//	/kubepods.slice/kubepods-podUID.slice/crio-ID.scope              guaranteed QoS, CRI-O
//	/lxc.payload.NAME, /lxc/NAME                                    LXC
func ContainerOf(path string) (Container, bool) {
	var c Container
	found := false
	parts := strings.Split(strings.Trim(path, "/"), "/")
	for i, p := range parts {
		if uid, ok := podUID(p); ok {
			c.Pod, found = uid, true
			if c.Runtime == "" {
				c.Runtime = "kubernetes"
			}
			continue
		}
		if id, ok := strings.CutSuffix(p, ".scope"); ok && !strings.Contains(id, "-conmon-") {
			for _, sp := range scopePrefixes {
				if rest, ok := strings.CutPrefix(id, sp.prefix); ok && isContainerID(rest) {
					c.Runtime, c.ID, found = sp.runtime, rest, true
				}
			}
			continue
		}
		if i > 0 {
			switch parent := parts[i-1]; {
			case parent == "docker" && isContainerID(p):
				c.Runtime, c.ID, found = "docker", p, true
			case parent == "lxc" && p != "":
				c.Runtime, c.ID, found = "lxc", p, true
			case strings.HasPrefix(parent, "pod") && c.Pod != "" && isContainerID(p):
				c.ID = p
			}
		}
		if name, ok := strings.CutPrefix(p, "lxc.payload."); ok && name != "" {
			c.Runtime, c.ID, found = "lxc", name, true
		}
	}
	return c, found
}

// podUID reads a kubelet's pod cgroup name: podUID (cgroupfs driver, the
// UID with dashes) or kubepods[-QOS]-podUID.slice (systemd driver, dashes
// escaped as underscores).
func podUID(p string) (string, bool) {
	if s, ok := strings.CutSuffix(p, ".slice"); ok {
		i := strings.LastIndex(s, "-pod")
		if i < 0 || !strings.HasPrefix(s, "kubepods") {
			return "", false
		}
		uid := strings.ReplaceAll(s[i+4:], "_", "-")
		return uid, isUUID(uid)
	}
	if uid, ok := strings.CutPrefix(p, "pod"); ok && isUUID(uid) {
		return uid, true
	}
	return "", false
}

func isUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		switch i {
		case 8, 13, 18, 23:
			if s[i] != '-' {
				return false
			}
		default:
			if !isHex(s[i]) {
				return false
			}
		}
	}
	return true
}

// isContainerID: docker, podman, containerd and CRI-O name containers by 64
// lowercase hex digits.
func isContainerID(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isHex(s[i]) || s[i] >= 'A' && s[i] <= 'F' {
			return false
		}
	}
	return true
}

func isHex(c byte) bool { return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' }
