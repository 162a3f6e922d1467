package main

import (
	"testing"

	"github.com/picket-guard/picket/internal/testkit"
)

// The test binary doubles as the hostile-named processes of
// TestSnapshotHostileNameLive (testkit.StartSockets) and the leaking
// process of TestRunForecastsALeak.
func TestMain(m *testing.M) { testkit.Main(m, map[string]func() int{"udp-leak": udpLeak}) }
