package httpproxy

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/meshlet/meshlet/proxy/balance"
)

// step is one layer's view of the rest of the stack; layers return errors
// rather than writing them, and respond turns errors into responses.
type step func(c *call) error

// layer wraps the rest of the stack.
type layer func(next step) step

func chain(last step, layers ...layer) step {
	for i := len(layers) - 1; i >= 0; i-- {
		last = layers[i](last)
	}
	return last
}

// buildStacks declares the request path, outermost layer first. It runs
// once, in New; nothing is assembled per request.
func (p *Proxy) buildStacks() {
	p.outbound = chain(p.forward,
		p.observe,  // golden metrics: response count with classification (metrics.go)
		p.respond,  // errors → status codes, gRPC status, proxy-error metric (errors.go)
		p.deadline, // Config.RequestTimeout, until response headers
		p.route,    // authority → balancer, or the original destination when unknown
		p.balance,  // P2C pick of an endpoint; its in-flight count and RTT
	)
	p.inbound = chain(p.forward,
		p.observe,
		p.respond,
		p.deadline,
		p.local, // the application: Config.InboundTarget or 127.0.0.1:<original port>
	)
	// A request refused before routing (conn.ServeHTTP) is still answered
	// and counted like any other.
	p.reject = chain(func(c *call) error { return c.rejected }, p.observe, p.respond)
}

func (p *Proxy) observe(next step) step {
	return func(c *call) error {
		c.start = time.Now()
		err := next(c)
		rt := c.route
		if rt == nil { // failed before routing
			rt = c.conn.routeFor(c.authority)
		}
		failure := err != nil || c.status >= 500 || (c.grpcStatus != "" && c.grpcStatus != "0")
		rt.response(c.status, failure, c.grpcStatus)
		return err
	}
}

func (p *Proxy) respond(next step) step {
	return func(c *call) error {
		err := next(c)
		if err != nil {
			if r := c.writeError(err); r == reasonClientGone && !c.wrote {
				c.status = reasons[r].status
			}
		}
		return err
	}
}

func (p *Proxy) deadline(next step) step {
	d := p.cfg.RequestTimeout
	if d <= 0 {
		return next
	}
	return func(c *call) error {
		ctx, cancel := context.WithCancelCause(c.parent)
		c.parent = ctx
		c.timer = time.AfterFunc(d, func() { cancel(errRequestTimeout) })
		err := next(c)
		c.timer.Stop()
		cancel(nil)
		return err
	}
}

func (p *Proxy) route(next step) step {
	return func(c *call) error {
		c.authority = c.conn.authorityOf(c.r.Host)
		if c.r.Method == http.MethodConnect {
			return errorf(reasonBadRequest, "CONNECT %s: the proxy does not tunnel CONNECT", c.authority)
		}
		if p.cfg.Balancers == nil {
			return p.toOrigDst(c, next)
		}
		b := p.cfg.Balancers.Get(c.authority)
		if !b.Resolved() {
			ctx, cancel := context.Context(c), context.CancelFunc(nil)
			if p.cfg.ConnectTimeout > 0 {
				ctx, cancel = context.WithTimeout(c, p.cfg.ConnectTimeout)
			}
			err := b.Wait(ctx)
			if cancel != nil {
				cancel()
			}
			if err != nil {
				if c.Err() != nil {
					return err // the client left, or the request timed out
				}
				return errorf(reasonResolveTimeout, "%s: no answer from the control plane in %v", c.authority, p.cfg.ConnectTimeout)
			}
		}
		if !b.Exists() {
			return p.toOrigDst(c, next)
		}
		c.bal = b
		return next(c)
	}
}

// toOrigDst sends a request for an authority the control plane does not
// know to the address the application connected to, in plaintext.
func (p *Proxy) toOrigDst(c *call, next step) error {
	if c.conn.origDst == "" {
		return errorf(reasonUnknownAuthority, "%s is unknown and the connection has no original destination", c.authority)
	}
	c.addr = c.conn.origDst
	c.up = c.conn.appUpstream()
	c.route = c.conn.routeFor(c.authority)
	c.route.requests.Inc()
	return next(c)
}

func (p *Proxy) balance(next step) step {
	return func(c *call) error {
		if c.bal == nil { // routed to the original destination
			return next(c)
		}
		err := p.attempt(c, next)
		if retryable(c, err) {
			// Nothing reached the endpoint: the request goes once more, to
			// another one. The failed attempt is counted on its endpoint's
			// route like any failure, and weighs on its balancer cost.
			if ep := c.bal.Pick(); ep != nil && ep != c.ep {
				p.metrics.proxyError(c.conn.info.Direction, classify(c, err))
				c.route.response(reasons[reasonConnect].status, true, "")
				p.metrics.retries[c.conn.info.Direction].Inc()
				c.retried = true
				err = p.attempt(c, next, ep)
			}
		}
		return err
	}
}

// attempt sends c to an endpoint (ep, or the balancer's pick).
func (p *Proxy) attempt(c *call, next step, ep ...*balance.Endpoint) error {
	if len(ep) > 0 {
		c.ep = ep[0]
	} else if c.ep = c.bal.Pick(); c.ep == nil {
		return errorf(reasonNoEndpoints, "%s has no ready endpoint", c.authority)
	}
	info := p.endpointInfo(c.ep)
	c.addr, c.epDone = info.addr, false
	mtls := c.ep.Identity != "" && p.cfg.Identity != nil
	if mtls {
		if info.peerErr != nil {
			return &proxyError{reason: reasonTLS, err: fmt.Errorf("endpoint %s: %w", info.addr, info.peerErr)}
		}
		c.identity, c.peer = c.ep.Identity, info.peer
		// HTTP/1 travels between proxies as HTTP/1.1 over pooled mTLS
		// connections when the fast client can carry it (and for
		// upgrades); other HTTP/1 requests (chunked or large bodies,
		// Expect) and HTTP/2 multiplex on one HTTP/2 connection.
		c.up = upMeshH2
		if c.upgrade != nil || c.r.ProtoMajor == 1 && fastH1(c.r, nil) {
			c.up = upMeshH1
		}
	} else {
		c.identity, c.peer = "", spiffeid.ID{}
		c.up = c.conn.appUpstream()
	}
	c.route = p.endpointRoute(info, c.authority, mtls)
	c.route.requests.Inc()
	c.epStart = c.ep.Start()
	err := next(c)
	// A no-op unless the request failed before response headers; a client
	// that went away says nothing about the endpoint.
	c.endpointDone(c.r.Context().Err() == nil)
	return err
}

// retryable reports whether a failed request can go to another endpoint:
// the TCP connect failed (so the endpoint saw nothing), nothing was
// answered yet, the request has no body to replay, and it is the first try.
func retryable(c *call, err error) bool {
	if err == nil || c.retried || c.wrote || !isTCPDialError(err) || c.ctx().Err() != nil {
		return false
	}
	return c.r.ContentLength == 0 // no body: HTTP/1 without one, HTTP/2 whose headers ended the stream
}

// isTCPDialError reports a failed TCP connect (not TLS). Apart so that its
// errors.As target is allocated only for failed requests.
func isTCPDialError(err error) bool {
	var de *dialError
	return errors.As(err, &de) && !de.tls
}

func (p *Proxy) local(next step) step {
	return func(c *call) error {
		c.authority = c.r.Host
		if c.conn.localAddr == "" {
			return errorf(reasonUnknownAuthority, "no inbound target and no original destination")
		}
		c.addr = c.conn.localAddr
		c.up = upHTTP1
		if c.r.ProtoMajor == 2 {
			// From another proxy, an HTTP/1.1 request travels as HTTP/2 and
			// says so; the application gets it back in HTTP/1.1.
			if v := c.r.Header[hdrOrigProto]; len(v) == 0 || v[0] != origProtoHTTP11 {
				c.up = upH2C
			}
		}
		delete(c.r.Header, hdrOrigProto)
		c.route = c.conn.routeFor(c.authority)
		c.route.requests.Inc()
		return next(c)
	}
}
