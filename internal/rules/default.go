package rules

import _ "embed"

// DefaultConfig is the built-in configuration: doctor's checks as rules,
// reported on stderr, no action taken.
//
//go:embed default.yaml
var DefaultConfig []byte

// DefaultConfigName is how errors and `validate` name the built-in config.
const DefaultConfigName = "(built-in default)"
