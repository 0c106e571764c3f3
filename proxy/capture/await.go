package capture

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"time"
)

// RunAwait is `meshlet-proxy await`: it polls http://<admin-addr>/ready until
// it answers 200 or the timeout passes. The injector's fallback mode (for
// clusters without native sidecars) runs it as the proxy container's
// postStart hook: the kubelet starts the next container only after the hook
// returns, so the application never starts before its proxy can carry
// traffic. It lives beside `init` because both are pod plumbing run by the
// proxy image, not part of the proxy itself.
func RunAwait(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("meshlet-proxy await", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("admin-addr", "127.0.0.1:4191", "the proxy's admin address")
	timeout := fs.Duration("timeout", 2*time.Minute, "give up after this long")
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("capture: %w", err)
	}
	return AwaitReady(ctx, "http://"+*addr+"/ready", *timeout, stdout)
}

// AwaitReady polls url every 200ms until it answers 200 OK, ctx ends, or
// timeout passes.
func AwaitReady(ctx context.Context, url string, timeout time.Duration, log io.Writer) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	client := &http.Client{Timeout: time.Second}
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return fmt.Errorf("capture: await %s: %w", url, err)
		}
		resp, err := client.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				fmt.Fprintf(log, "proxy ready at %s\n", url)
				return nil
			}
			err = fmt.Errorf("status %d", resp.StatusCode)
		}
		last = err
		select {
		case <-ctx.Done():
			return fmt.Errorf("capture: proxy not ready at %s after %s: %v", url, timeout, last)
		case <-tick.C:
		}
	}
}
