package dev

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
)

// The namespace part of every local SPIFFE ID: spiffe://<td>/ns/dev/sa/<service>.
const devNamespace = "dev"

// identityAccount is the ServiceAccount part of the local identity
// service's own SPIFFE ID: proxies check it before sending their token.
const identityAccount = "meshlet-identity"

// upstreamAccount is the ServiceAccount part of the identity that every
// upstream (client-side) proxy presents.
const upstreamAccount = "upstream"

// sidecar is the inbound proxy in front of one service instance.
type sidecar struct {
	Service  string
	Index    int
	Instance netip.AddrPort // the application
	Inbound  string         // where the proxy accepts mTLS from other proxies
	Outbound string         // its outbound listener, which nothing uses here
	Admin    string
	Identity string
	Protocol Protocol
}

// Name is the sidecar's unique process name.
func (s sidecar) Name() string { return fmt.Sprintf("sidecar/%s-%d", s.Service, s.Index) }

// upstreamProxy is the outbound proxy behind one upstream's listen address.
type upstreamProxy struct {
	Service  string
	Index    int
	Listen   netip.AddrPort
	Inbound  string // its inbound listener, which nothing uses here
	Admin    string
	Identity string
	Protocol Protocol
}

// Name is the upstream proxy's unique process name.
func (u upstreamProxy) Name() string { return fmt.Sprintf("upstream/%s-%d", u.Service, u.Index) }

// plan is what a Config turns into: the proxies to run and their addresses.
// Addresses of proxies that outlive a reload are kept (see replan).
type plan struct {
	TrustDomain string
	Sidecars    []sidecar
	Upstreams   []upstreamProxy
}

// spiffeID returns the local mesh's identity for a ServiceAccount name.
func spiffeID(td, account string) string {
	return fmt.Sprintf("spiffe://%s/ns/%s/sa/%s", td, devNamespace, account)
}

// makePlan derives the proxies of c. prev, when not nil, is the running plan:
// a proxy for the same instance or listen address keeps its ports.
func makePlan(c *Config, prev *plan, ports *portAlloc) (*plan, error) {
	for _, u := range c.Upstreams {
		ports.reserve(u.Listen.String())
	}
	oldSidecar := map[netip.AddrPort]sidecar{}
	oldUpstream := map[netip.AddrPort]upstreamProxy{}
	if prev != nil {
		for _, s := range prev.Sidecars {
			oldSidecar[s.Instance] = s
		}
		for _, u := range prev.Upstreams {
			oldUpstream[u.Listen] = u
		}
	}
	p := &plan{TrustDomain: c.TrustDomain}
	for _, name := range c.ServiceNames() {
		svc := c.Services[name]
		// A sidecar keeps its index (and so its process name, token and
		// pod label) for as long as its instance stays; a new instance
		// takes the lowest index no current instance holds.
		used := map[int]bool{}
		for _, in := range svc.Instances {
			if old, ok := oldSidecar[in.AddrPort]; ok && old.Service == name {
				used[old.Index] = true
			}
		}
		next := 0
		for _, in := range svc.Instances {
			s := sidecar{Service: name, Instance: in.AddrPort, Identity: spiffeID(c.TrustDomain, name), Protocol: svc.Protocol}
			if old, ok := oldSidecar[in.AddrPort]; ok && old.Service == name {
				s.Index, s.Inbound, s.Outbound, s.Admin = old.Index, old.Inbound, old.Outbound, old.Admin
			} else {
				for used[next] {
					next++
				}
				s.Index = next
				used[next] = true
				if err := ports.fill(&s.Inbound, &s.Outbound, &s.Admin); err != nil {
					return nil, err
				}
			}
			p.Sidecars = append(p.Sidecars, s)
		}
	}
	counts := map[string]int{}
	for _, up := range c.Upstreams {
		u := upstreamProxy{Service: up.Service, Index: counts[up.Service], Listen: up.Listen.AddrPort,
			Identity: spiffeID(c.TrustDomain, upstreamAccount), Protocol: c.Services[up.Service].Protocol}
		counts[up.Service]++
		if old, ok := oldUpstream[up.Listen.AddrPort]; ok {
			u.Inbound, u.Admin = old.Inbound, old.Admin
		} else if err := ports.fill(&u.Inbound, &u.Admin); err != nil {
			return nil, err
		}
		p.Upstreams = append(p.Upstreams, u)
	}
	return p, nil
}

// portAlloc hands out free loopback ports, never the same one twice in a
// mesh's life and never one reserved for an upstream's listen address: a
// port is only free until someone binds it, and the children bind theirs
// some time after they are chosen.
type portAlloc struct {
	used map[string]bool
}

func newPortAlloc() *portAlloc { return &portAlloc{used: map[string]bool{}} }

func (a *portAlloc) reserve(addr string) { a.used[addr] = true }

// fill sets each address to a new free port.
func (a *portAlloc) fill(addrs ...*string) error {
	for _, p := range addrs {
		for tries := 0; ; tries++ {
			addr, err := freePort()
			if err != nil {
				return err
			}
			if !a.used[addr] {
				a.used[addr] = true
				*p = addr
				break
			}
			if tries > 100 {
				return fmt.Errorf("dev: no free loopback port found")
			}
		}
	}
	return nil
}

// freePort returns a loopback address with a port free at the time of the
// call. Another process could take it before the child binds it; the child
// then fails to start and says so, which is acceptable for a developer tool.
func freePort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("dev: finding a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// checkListenFree fails when an upstream's listen address cannot be bound,
// naming the line of the mesh file, before anything is started.
func checkListenFree(c *Config, running *plan) error {
	mine := map[netip.AddrPort]bool{}
	if running != nil {
		for _, u := range running.Upstreams {
			mine[u.Listen] = true
		}
	}
	for _, u := range c.Upstreams {
		if mine[u.Listen.AddrPort] {
			continue
		}
		ln, err := net.Listen("tcp", u.Listen.String())
		if err != nil {
			return &lineError{u.Listen.Line, fmt.Sprintf("cannot listen on %s: %v", u.Listen.AddrPort, err)}
		}
		ln.Close()
	}
	return nil
}

func itoa(i int) string { return strconv.Itoa(i) }
