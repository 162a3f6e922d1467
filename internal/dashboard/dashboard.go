// Package dashboard is picket's web page: findings, the kernel's
// limits as gauges, the heaviest process groups and socket holders, plots of
// the history with the limit on the same plot (and, for a limit with a
// trend, the fitted line on to it with its ETA), and the action journal. It is
// static files embedded in the binary; everything on the page comes from
// the server's JSON API (internal/server), which serves these files at /.
//
// The files run under Content-Security-Policy default-src 'self': no inline
// script or style, nothing from another origin. The one library, uPlot, is
// vendored under web/vendor at the version and checksums pinned in
// scripts/vendor-uplot, so a fresh clone builds without npm.
package dashboard

import (
	"embed"
	"io/fs"
)

//go:embed web
var files embed.FS

// Assets is the dashboard's files, index.html at the top, for
// server.Options.Assets.
func Assets() fs.FS {
	sub, err := fs.Sub(files, "web")
	if err != nil {
		panic(err) // "web" is a valid path: fs.Sub cannot fail on it
	}
	return sub
}
