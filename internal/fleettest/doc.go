// Package fleettest holds the end-to-end test of picket on a fleet
// (docs/fleet.md): hosts made of network and pid namespaces, each running
// picket, with Debian's Prometheus and a cluster of Alertmanagers. It has
// no code of its own outside its tests.
package fleettest
