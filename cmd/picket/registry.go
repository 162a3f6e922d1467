package main

import (
	"github.com/picket-guard/picket/internal/act"
	"github.com/picket-guard/picket/internal/notify"
	"github.com/picket-guard/picket/internal/rules"
)

// registry hands the rules loader notify's and act's specs: rules knows
// neither package, main wires them.
func registry() rules.Registry {
	return rules.Registry{
		Output: func(kind string) (any, bool) {
			s, ok := notify.NewSpec(kind)
			return s, ok
		},
		Action: func(kind string) (any, bool) {
			s, ok := act.NewSpec(kind)
			return s, ok
		},
		Protect:     func() any { return &act.Protected{} },
		OutputKinds: notify.Kinds(),
		ActionKinds: act.Kinds(),
	}
}

// loadConfig loads path, or the built-in default when path is empty.
func loadConfig(path string) (*rules.Config, string, error) {
	if path == "" {
		cfg, err := rules.LoadBytes(rules.DefaultConfigName, rules.DefaultConfig, registry())
		return cfg, rules.DefaultConfigName, err
	}
	cfg, err := rules.Load(path, registry())
	return cfg, path, err
}
