// Command meshlet-proxy is the meshlet sidecar proxy.
//
//	meshlet-proxy [flags]        run the proxy (settings: flags or MESHLET_PROXY_* variables)
//	meshlet-proxy init [flags]   program the pod's iptables capture rules (init container)
//	meshlet-proxy await [flags]  wait until the proxy is ready (postStart hook)
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"syscall"

	"github.com/meshlet/meshlet/proxy"
	"github.com/meshlet/meshlet/proxy/capture"
)

// gcPercent is the proxy's GOGC unless the environment sets one.
const gcPercent = 200

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "meshlet-proxy:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	if len(args) > 0 {
		switch args[0] {
		case "init":
			return capture.RunInit(ctx, args[1:], os.Stdout, os.Stderr)
		case "await":
			return capture.RunAwait(ctx, args[1:], os.Stdout, os.Stderr)
		}
	}
	cfg, _, err := proxy.ParseConfig("meshlet-proxy", args, os.LookupEnv)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	if cfg.Cores > 0 {
		runtime.GOMAXPROCS(cfg.Cores)
	}
	if _, set := os.LookupEnv("GOGC"); !set {
		// The proxy's live heap is a few MB and nearly all it allocates
		// dies with its request: collecting at 3x the live heap rather than
		// 2x costs a few MB of RSS and saves CPU on every request.
		debug.SetGCPercent(gcPercent)
	}
	return proxy.Run(ctx, cfg)
}
