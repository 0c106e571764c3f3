// Package version reports the build's version, set by the Makefile with
// -ldflags "-X github.com/meshlet/meshlet/internal/version.Version=...".
package version

// Version is the meshlet release this binary was built from; "dev" for
// builds outside the Makefile.
var Version = "dev"
