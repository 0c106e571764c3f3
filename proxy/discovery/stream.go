package discovery

import (
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net/netip"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/meshlet/meshlet/destination/api/destinationpb"
	"github.com/meshlet/meshlet/proxy/endpoint"
)

// run keeps a stream open for r until ctx ends, re-opening it after a
// jittered exponential backoff. The set stays as it was between streams.
func (r *resolution) run(ctx context.Context) {
	cfg := r.c.cfg
	backoff := cfg.MinBackoff
	for {
		progressed, err := r.stream(ctx)
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			err = errStreamEnded
		}
		code := status.Code(err)
		r.c.m.streamErrors.WithLabelValues(code.String()).Inc()
		if progressed {
			backoff = cfg.MinBackoff
		}
		wait := backoff
		if code == codes.InvalidArgument {
			// The server cannot interpret this authority: nothing will
			// change soon, and the proxy should connect to it directly.
			r.publish(endpoint.Set{Exists: false})
			wait = cfg.MaxBackoff
			r.c.cfg.Logger.Warn("discovery: destination rejected the authority", "authority", r.authority, "error", err)
		} else {
			r.c.cfg.Logger.Debug("discovery: stream ended, reconnecting", "authority", r.authority, "error", err, "backoff", wait)
		}
		t := time.NewTimer(jitter(wait))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		backoff = min(backoff*2, cfg.MaxBackoff)
	}
}

// jitter spreads reconnects of many proxies over [d/2, d).
func jitter(d time.Duration) time.Duration {
	if d <= 1 {
		return d
	}
	return d/2 + rand.N(d/2)
}

// stream follows one Get call; progressed is true once a message arrived.
// Its first message replaces whatever was known (the server sends the full
// state first).
func (r *resolution) stream(ctx context.Context) (progressed bool, err error) {
	st, err := r.c.api.Get(ctx, &pb.GetRequest{Authority: r.authority, ContextNamespace: r.c.cfg.ContextNamespace})
	if err != nil {
		return false, err
	}
	s := state{eps: make(map[netip.AddrPort]endpoint.Endpoint)}
	for {
		u, err := st.Recv()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return progressed, nil
			}
			return progressed, err
		}
		r.c.m.updates.Inc()
		if n := s.apply(u); n > 0 {
			r.c.m.invalid.Add(float64(n))
		}
		progressed = true
		r.publish(s.set())
	}
}
