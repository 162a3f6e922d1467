// Package testkit is what picket's tests share, so that each package's
// tests say only what they check (procfs keeps one getProcFixtures for the
// same reason):
//
//   - golden files: Golden compares output with testdata/NAME, and
//     `go test ./PKG -update` rewrites them (the one -update flag);
//   - fixture trees: CopyTree, a private copy of a /proc tree a test may
//     break, and RepoPath, a file of the repository from any package;
//   - named processes: NamedBin, Sleepers and WaitComm make a storm of
//     processes with the comm a test chooses, started as any user, and
//     wait until the kernel shows that comm;
//   - the test binary as a helper: Main (from TestMain) runs a named helper
//     instead of the tests when the binary was started as one;
//     StartSockets starts the built-in socket holder (package hold);
//   - tools and places: Need finds a program scripts/test installs (fails
//     as root, skips otherwise), SharedDir is a directory other users may
//     enter;
//   - waiting: Eventually polls a condition with a bound, Serve starts a
//     server and returns once it listens.
//
// The real kernel provoked into logging (a pids refusal, an OOM kill, each
// in a cgroup made and removed for one test) is package kerneltest.
//
// The live snapshot and the snapshot fixtures are in package snaptest:
// they need the collector, whose own tests use this package.
//
// Only _test.go files import testkit and its packages (scripts/test checks
// that cmd/picket does not link them).
package testkit
