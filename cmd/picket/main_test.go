package main

import (
	"testing"

	"github.com/picket-guard/picket/internal/testkit"
)

// The test binary doubles as the hostile-named processes of
// TestSnapshotHostileNameLive (testkit.StartSockets), the leaking
// process of TestRunForecastsALeak and the sawtooth of
// TestRunNoForecastOnChurn.
func TestMain(m *testing.M) {
	testkit.Main(m, map[string]func() int{"udp-leak": udpLeak, "udp-sawtooth": udpSawtooth}, removeTestBinary)
}
