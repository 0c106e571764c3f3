// Command meshctl installs, checks and uses the meshlet service mesh. All
// of it lives in package cli/meshctl; this only wires the process to it.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/meshlet/meshlet/cli/dev"
	"github.com/meshlet/meshlet/cli/meshctl"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// meshctl dev (issue 6) lives in its own package and joins here, so
	// cli/meshctl does not depend on it.
	code := meshctl.Main(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr, dev.NewCommand())
	stop()
	os.Exit(code)
}
