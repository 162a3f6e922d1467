package main

import (
	"context"
	"io"
)

func runDoctor(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("doctor", "Not yet built (issue 3).", stdout, stderr)
	if st, stop := parseFlags(fs, args); stop {
		return st
	}
	return 3
}
