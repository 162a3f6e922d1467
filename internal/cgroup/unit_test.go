package cgroup

import "testing"

const id = "3b2f8c1ad6e54f0f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f"

// Paths as real hosts print them in /proc/PID/cgroup.
func TestUnitAndContainer(t *testing.T) {
	for _, tc := range []struct {
		path, unit string
		c          Container
		isC        bool
	}{
		{"/", "", Container{}, false},
		{"/system.slice/apache2.service", "apache2.service", Container{}, false},
		{"/system.slice/postfix@-.service", "postfix@-.service", Container{}, false},
		{"/user.slice/user-1000.slice/session-3.scope", "session-3.scope", Container{}, false},
		{"/user.slice/user-1000.slice", "user-1000.slice", Container{}, false},
		{"/user.slice/user-1000.slice/user@1000.service/init.scope", "init.scope", Container{}, false},
		{"/user.slice/user-1000.slice/user@1000.service/app.slice/app-gnome-firefox-4242.scope", "app-gnome-firefox-4242.scope", Container{}, false},
		{"/init.scope", "init.scope", Container{}, false},
		{"/system.slice/containerd.service", "containerd.service", Container{}, false},
		// A service's own subtree (Delegate=yes) belongs to the service.
		{"/system.slice/buildkitd.service/payload/job-7", "buildkitd.service", Container{}, false},
		// A name systemd never makes is not a unit, whatever its suffix.
		{"/user.slice/user-1000.slice/user@1000.service/x $(reboot).service", "user@1000.service", Container{}, false},
		{"/docker/" + id, "", Container{"docker", id, ""}, true},
		{"/system.slice/docker-" + id + ".scope", "docker-" + id + ".scope", Container{"docker", id, ""}, true},
		{"/system.slice/docker.service", "docker.service", Container{}, false},
		{"/machine.slice/libpod-" + id + ".scope/container", "libpod-" + id + ".scope", Container{"podman", id, ""}, true},
		{"/machine.slice/libpod-conmon-" + id + ".scope", "libpod-conmon-" + id + ".scope", Container{}, false},
		{"/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-" + id + ".scope", "libpod-" + id + ".scope", Container{"podman", id, ""}, true},
		{"/system.slice/nerdctl-" + id + ".scope", "nerdctl-" + id + ".scope", Container{"containerd", id, ""}, true},
		{"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod0c9f6b4e_2d1a_4b3c_9e8f_7a6b5c4d3e2f.slice/cri-containerd-" + id + ".scope",
			"cri-containerd-" + id + ".scope", Container{"containerd", id, "0c9f6b4e-2d1a-4b3c-9e8f-7a6b5c4d3e2f"}, true},
		{"/kubepods.slice/kubepods-pod0c9f6b4e_2d1a_4b3c_9e8f_7a6b5c4d3e2f.slice/crio-" + id + ".scope",
			"crio-" + id + ".scope", Container{"cri-o", id, "0c9f6b4e-2d1a-4b3c-9e8f-7a6b5c4d3e2f"}, true},
		{"/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod0c9f6b4e_2d1a_4b3c_9e8f_7a6b5c4d3e2f.slice",
			"kubepods-besteffort-pod0c9f6b4e_2d1a_4b3c_9e8f_7a6b5c4d3e2f.slice", Container{"kubernetes", "", "0c9f6b4e-2d1a-4b3c-9e8f-7a6b5c4d3e2f"}, true},
		{"/kubepods/burstable/pod0c9f6b4e-2d1a-4b3c-9e8f-7a6b5c4d3e2f/" + id, "", Container{"kubernetes", id, "0c9f6b4e-2d1a-4b3c-9e8f-7a6b5c4d3e2f"}, true},
		{"/kubepods/pod0c9f6b4e-2d1a-4b3c-9e8f-7a6b5c4d3e2f", "", Container{"kubernetes", "", "0c9f6b4e-2d1a-4b3c-9e8f-7a6b5c4d3e2f"}, true},
		{"/lxc.payload.web1", "", Container{"lxc", "web1", ""}, true},
		{"/lxc/web1", "", Container{"lxc", "web1", ""}, true},
		// Not an id: too short, upper case.
		{"/docker/abc123", "", Container{}, false},
		{"/system.slice/docker-ABC.scope", "docker-ABC.scope", Container{}, false},
	} {
		if got := Unit(tc.path); got != tc.unit {
			t.Errorf("Unit(%q) = %q, want %q", tc.path, got, tc.unit)
		}
		c, ok := ContainerOf(tc.path)
		if ok != tc.isC || c != tc.c {
			t.Errorf("ContainerOf(%q) = %+v %v, want %+v %v", tc.path, c, ok, tc.c, tc.isC)
		}
	}
}

func TestUserManager(t *testing.T) {
	for path, want := range map[string]string{
		"/user.slice/user-1000.slice/user@1000.service/app.slice/x.service": "1000",
		"/user.slice/user-1000.slice/session-3.scope":                       "",
		"/system.slice/user@x.service":                                      "",
	} {
		if got := UserManager(path); got != want {
			t.Errorf("UserManager(%q) = %q, want %q", path, got, want)
		}
	}
}

func TestIsUnitName(t *testing.T) {
	for s, want := range map[string]bool{
		"apache2.service": true, "user@1000.service": true, "system-getty.slice": true, "dev-x2dsda.swap": true,
		"a\\x2db.service": true, ".service": false, "apache2": false, "a b.service": false, "a/b.service": false,
		"x;rm.service": false, "x'y.scope": false, "héllo.service": false,
	} {
		if got := IsUnitName(s); got != want {
			t.Errorf("IsUnitName(%q) = %v, want %v", s, got, want)
		}
	}
}

func FuzzContainerOf(f *testing.F) {
	f.Add("/kubepods/burstable/pod0c9f6b4e-2d1a-4b3c-9e8f-7a6b5c4d3e2f/" + id)
	f.Add("/system.slice/docker-" + id + ".scope")
	f.Fuzz(func(t *testing.T, p string) {
		c, ok := ContainerOf(p)
		if !ok && c != (Container{}) {
			t.Errorf("not a container but %+v", c)
		}
		if u := Unit(p); u != "" && !IsUnitName(u) {
			t.Errorf("Unit(%q) = %q, not a unit name", p, u)
		}
	})
}
