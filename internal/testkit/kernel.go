package testkit

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// KernelAtLeast says whether the running kernel is major.minor or later:
// for a test of a kernel feature that older kernels do not have, to skip
// there with the reason instead of failing.
func KernelAtLeast(major, minor int) bool {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return false
	}
	var ma, mi int
	fmt.Sscanf(unix.ByteSliceToString(u.Release[:]), "%d.%d", &ma, &mi)
	return ma > major || ma == major && mi >= minor
}
