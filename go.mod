module github.com/picket-guard/picket

go 1.26.8

require (
	github.com/expr-lang/expr v1.17.8 // indirect
	github.com/prometheus/procfs v0.23.0 // indirect
	go.yaml.in/yaml/v3 v3.0.6 // indirect
	golang.org/x/sys v0.49.0 // indirect
)
