package notify

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"mime/quotedprintable"
	"sync"
	"testing"
	"time"

	"github.com/picket-guard/picket/internal/alarm"
)

// testNow is the imapd storm's date: the imapd storms of April 2000, moved on.
var testNow = time.Date(2026, 4, 28, 9, 30, 0, 0, time.UTC)

func testEnv(t *testing.T) Env {
	return Env{Hostname: "moscow", Now: func() time.Time { return testNow }, Logger: testSlog(t), StateDir: t.TempDir()}
}

// testSlog sends log records to t.Log.
func testSlog(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(string(bytes.TrimRight(p, "\n")))
	return len(p), nil
}

// procRow is a row of the process_groups table (PIKT's
// `ps -eo user,comm | sort | uniq -c`).
func procRow(user, comm string, count int) map[string]any {
	return map[string]any{"user": user, "comm": comm, "count": count}
}

// procAlarm is what the rules engine makes of such a row.
func procAlarm(row map[string]any, status alarm.Status) alarm.Alarm {
	a := alarm.Alarm{Host: "moscow", Rule: "ProcNumChkRed", Case: "imapd", Level: alarm.Emergency, Status: status,
		Table: "process_groups", Key: fmt.Sprintf("user=%v comm=%v", row["user"], row["comm"]), Row: row,
		Message: alarm.Inline(row), StartsAt: testNow.Add(-5 * time.Minute)}
	if status == alarm.Resolved {
		a.EndsAt = testNow
	}
	return a
}

func procBatch(status alarm.Status, rows ...map[string]any) alarm.Batch {
	b := alarm.Batch{Host: "moscow", Rule: "ProcNumChkRed", Level: alarm.Emergency}
	for _, r := range rows {
		b.Alarms = append(b.Alarms, procAlarm(r, status))
	}
	return b
}

// The imapd storm: three users past the threshold.
func stormBatch() alarm.Batch {
	return procBatch(alarm.Firing,
		procRow("alice", "imapd", 93),
		procRow("bob", "imapd", 121),
		procRow("carol", "imapd", 90))
}

func decodeQP(t *testing.T, b []byte) string {
	t.Helper()
	out, err := io.ReadAll(quotedprintable.NewReader(bytes.NewReader(b)))
	if err != nil {
		t.Fatalf("quoted-printable: %v", err)
	}
	return string(out)
}

// safeBuffer is a bytes.Buffer for concurrent writers.
type safeBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *safeBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *safeBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
