// Package endpoint holds the values that connect service discovery to the
// proxy's balancers: what an endpoint is, and the Resolver interface through
// which the proxy learns an authority's endpoints.
//
// The destination client (a gRPC stream to meshlet-destination) and the
// static resolver used by tests and simple setups both implement Resolver.
package endpoint

import (
	"net/netip"
	"strings"
)

// Protocol is a hint, sent by the control plane, of what an endpoint speaks.
type Protocol uint8

const (
	// ProtocolUnknown means the proxy detects the protocol itself.
	ProtocolUnknown Protocol = iota
	// ProtocolHTTP1 is HTTP/1.x in plaintext.
	ProtocolHTTP1
	// ProtocolHTTP2 means the endpoint is a meshed proxy (or app) that
	// accepts HTTP/2: HTTP requests are sent to it as HTTP/2.
	ProtocolHTTP2
	// ProtocolOpaque means the endpoint's port is opaque TCP: no
	// detection, no HTTP handling, bytes are forwarded as they are.
	ProtocolOpaque
)

// String returns the name used in metrics, manifests and configuration.
func (p Protocol) String() string {
	switch p {
	case ProtocolHTTP1:
		return "http1"
	case ProtocolHTTP2:
		return "http2"
	case ProtocolOpaque:
		return "opaque"
	}
	return "unknown"
}

// ParseProtocol is the inverse of String; "" and "auto" mean ProtocolUnknown.
func ParseProtocol(s string) (Protocol, bool) {
	switch strings.ToLower(s) {
	case "", "auto", "unknown":
		return ProtocolUnknown, true
	case "http1", "http/1.1", "http":
		return ProtocolHTTP1, true
	case "http2", "h2", "h2c", "grpc":
		return ProtocolHTTP2, true
	case "opaque", "tcp":
		return ProtocolOpaque, true
	}
	return ProtocolUnknown, false
}

// Endpoint is one address an authority resolves to. Values are immutable
// once handed to a Resolver's callback: receivers must not modify them.
type Endpoint struct {
	// Addr is the IP and port to connect to.
	Addr netip.AddrPort
	// Weight scales the endpoint's share of traffic; 0 means the default (1).
	Weight uint32
	// Identity is the endpoint's SPIFFE ID
	// (spiffe://<trust-domain>/ns/<ns>/sa/<sa>) when the endpoint is meshed,
	// and "" when it is not (then the proxy connects in plaintext).
	Identity string
	// Protocol is the control plane's hint of what the endpoint speaks.
	Protocol Protocol
	// Zone is the topology zone of the endpoint's node, "" if unknown.
	Zone string
	// Labels are metric labels for the destination (namespace, service,
	// pod, workload, serviceaccount). May be nil.
	Labels map[string]string
}

// Set is the complete, current view of an authority's endpoints.
type Set struct {
	// Exists is false when the control plane does not know the authority
	// at all (as opposed to a known service with no ready endpoints).
	Exists bool
	// Endpoints are the ready endpoints; empty means none is ready.
	Endpoints []Endpoint
}

// Resolver turns an authority (host:port, as the proxy saw it in an HTTP
// request or as a connection's original destination) into endpoint sets.
type Resolver interface {
	// Watch starts following authority. update is called with the complete
	// set each time it changes, the first time as soon as it is known. Calls
	// to update for one watch never run concurrently. While the control
	// plane is unreachable no call is made: the last set stays in force.
	// stop ends the watch; no call to update starts after stop returns.
	Watch(authority string, update func(Set)) (stop func())
}
