package webhook

import (
	"context"
	"log/slog"
	"reflect"
	"time"

	"github.com/meshlet/meshlet/injector"
)

// watchMesh reloads the mesh configuration every interval until ctx ends
// and installs it in h when it changed, so that rotating the trust anchors
// or changing the proxy version in the meshlet-config ConfigMap reaches new
// pods without restarting the injector. A configuration that doesn't load
// or validate is logged (once per distinct error) and counted; the current
// one stays.
func watchMesh(ctx context.Context, h *Handler, load func() (injector.Config, error), interval time.Duration, m *Metrics, log *slog.Logger) {
	t := time.NewTicker(interval)
	defer t.Stop()
	lastErr := ""
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		c, err := load()
		if err != nil {
			m.Errors.WithLabelValues(errConfigReload).Inc()
			if err.Error() != lastErr {
				log.Warn("mesh configuration reload failed; keeping the current one", "err", err)
				lastErr = err.Error()
			}
			continue
		}
		lastErr = ""
		if cur := h.meshConfig(); !reflect.DeepEqual(cur, c) {
			h.SetMesh(c)
			log.Info("mesh configuration changed", "proxyImage", c.ProxyImage, "proxyVersion", c.ProxyVersion)
		}
	}
}
