package main

import (
	"testing"

	"github.com/picket-guard/picket/internal/testkit"
)

// The test binary doubles as the hostile-named processes of
// TestSnapshotHostileNameLive (testkit.StartSockets).
func TestMain(m *testing.M) { testkit.Main(m, nil) }
