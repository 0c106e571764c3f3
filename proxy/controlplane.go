package proxy

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/meshlet/meshlet/proxy/discovery"
	"github.com/meshlet/meshlet/proxy/identity"
)

// controlPlane builds the control-plane clients the configuration names
// by address, unless the caller passed a Resolver or Source in already
// (tests, meshctl dev). It returns the clients' runner and closer.
func (p *Proxy) controlPlane() (run func(ctx context.Context), closeFn func(), err error) {
	var runs []func(context.Context)
	var closes []func()
	closeAll := func() {
		for _, c := range closes {
			c()
		}
	}
	if p.cfg.Resolver == nil && p.cfg.DestinationAddr != "" {
		dc, err := discovery.New(discovery.Config{
			Addr:             p.cfg.DestinationAddr,
			ContextNamespace: p.cfg.PodNamespace,
			Registry:         p.reg,
			Logger:           p.log,
		})
		if err != nil {
			return nil, nil, fmt.Errorf("proxy: destination client: %w", err)
		}
		p.cfg.Resolver = dc
		closes = append(closes, func() { dc.Close() })
	}
	if p.cfg.Source == nil && p.cfg.IdentityAddr != "" {
		ic, err := p.identityClient()
		if err != nil {
			closeAll()
			return nil, nil, err
		}
		p.cfg.Source = ic
		runs = append(runs, func(ctx context.Context) {
			if err := ic.Run(ctx); err != nil {
				p.log.Error("identity client stopped: the proxy will not become ready", "err", err)
			}
		})
	}
	run = func(ctx context.Context) {
		for _, r := range runs {
			r(ctx)
		}
	}
	return run, closeAll, nil
}

func (p *Proxy) identityClient() (*identity.Client, error) {
	if p.cfg.Identity == "" {
		return nil, errors.New("proxy: identity-addr is set but identity (this proxy's SPIFFE ID) is not")
	}
	id, err := spiffeid.FromString(p.cfg.Identity)
	if err != nil {
		return nil, fmt.Errorf("proxy: identity %q: %w", p.cfg.Identity, err)
	}
	anchors := []byte(p.cfg.TrustAnchors)
	if len(anchors) == 0 && p.cfg.TrustAnchorsFile != "" {
		if anchors, err = os.ReadFile(p.cfg.TrustAnchorsFile); err != nil {
			return nil, fmt.Errorf("proxy: trust anchors: %w", err)
		}
	}
	if len(anchors) == 0 {
		return nil, errors.New("proxy: identity-addr is set but neither trust-anchors nor trust-anchors-file is")
	}
	var server spiffeid.ID
	if p.cfg.IdentityServerID != "" {
		if server, err = spiffeid.FromString(p.cfg.IdentityServerID); err != nil {
			return nil, fmt.Errorf("proxy: identity-server-id %q: %w", p.cfg.IdentityServerID, err)
		}
	}
	ic, err := identity.New(identity.Config{
		Addr:            p.cfg.IdentityAddr,
		ServerIdentity:  server,
		Identity:        id,
		TokenFile:       p.cfg.IdentityTokenFile,
		TrustAnchorsPEM: anchors,
		Registry:        p.reg,
		Log:             p.log,
	})
	if err != nil {
		return nil, fmt.Errorf("proxy: %w", err)
	}
	return ic, nil
}
