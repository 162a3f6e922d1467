package forecast

import (
	"fmt"
	"math"
	"time"
)

// FormatETA writes a time to exhaustion as people say it: "~45s",
// "~12m", "~2h10m", "~3d4h". An estimate is never more precise than
// that.
func FormatETA(seconds float64) string {
	if math.IsNaN(seconds) || seconds < 0 {
		return "?"
	}
	d := time.Duration(seconds * float64(time.Second))
	switch {
	case d < 2*time.Minute:
		return fmt.Sprintf("~%ds", int(d.Round(time.Second)/time.Second))
	case d < time.Hour:
		return fmt.Sprintf("~%dm", int(d.Round(time.Minute)/time.Minute))
	case d < 48*time.Hour:
		d = d.Round(time.Minute)
		return fmt.Sprintf("~%dh%02dm", int(d/time.Hour), int(d%time.Hour/time.Minute))
	}
	d = d.Round(time.Hour)
	return fmt.Sprintf("~%dd%dh", int(d/(24*time.Hour)), int(d%(24*time.Hour)/time.Hour))
}

// FormatSpan writes a fit window: "45s", "45m", "2h10m".
func FormatSpan(seconds float64) string {
	d := time.Duration(seconds * float64(time.Second))
	switch {
	case d < 2*time.Minute:
		return fmt.Sprintf("%ds", int(d.Round(time.Second)/time.Second))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Round(time.Minute)/time.Minute))
	}
	d = d.Round(time.Minute)
	if d%time.Hour == 0 {
		return fmt.Sprintf("%dh", int(d/time.Hour))
	}
	return fmt.Sprintf("%dh%02dm", int(d/time.Hour), int(d%time.Hour/time.Minute))
}

// FormatRate writes a growth per second as "+41 processes/min" or
// "+3.5 fds/s", in the unit that gives a number people read.
func FormatRate(perSecond float64, unit string) string {
	switch {
	case perSecond >= 1:
		return fmt.Sprintf("+%s %s/s", num(perSecond), unit)
	case perSecond*60 >= 1:
		return fmt.Sprintf("+%s %s/min", num(perSecond*60), unit)
	}
	return fmt.Sprintf("+%s %s/h", num(perSecond*3600), unit)
}

func num(x float64) string {
	if x >= 10 {
		return fmt.Sprintf("%.0f", x)
	}
	return fmt.Sprintf("%.1f", x)
}
