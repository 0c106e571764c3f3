package httpproxy

import "net/netip"

// Direction says which side of the pod a connection came from.
type Direction uint8

const (
	// Inbound connections come from other pods (usually their proxies, over
	// mTLS) and go to the local application.
	Inbound Direction = iota
	// Outbound connections come from the local application and go to the
	// endpoints of the authority it named.
	Outbound
)

// String returns the value of the direction metric label.
func (d Direction) String() string {
	if d == Outbound {
		return "outbound"
	}
	return "inbound"
}

// Protocol is the HTTP version detected on (or negotiated for) a connection.
type Protocol uint8

const (
	// HTTP1 is HTTP/1.0 or HTTP/1.1.
	HTTP1 Protocol = iota
	// HTTP2 is HTTP/2: prior knowledge (h2c) in plaintext, or ALPN "h2"
	// over TLS.
	HTTP2
)

// String returns "HTTP/1.1" or "HTTP/2.0", the values of http.Request.Proto.
func (p Protocol) String() string {
	if p == HTTP2 {
		return "HTTP/2.0"
	}
	return "HTTP/1.1"
}

// ConnInfo is what the listener learnt about a connection before handing it
// to ServeConn.
type ConnInfo struct {
	// Direction is the listener the connection arrived on.
	Direction Direction
	// Protocol is the detected (plaintext) or ALPN-negotiated (TLS) protocol.
	Protocol Protocol
	// OrigDst is the connection's original destination (SO_ORIGINAL_DST, or
	// the listener address when not redirected). Inbound, the application
	// is reached at 127.0.0.1:OrigDst.Port() unless Config.InboundTarget is
	// set; outbound, it supplies the default port of a Host without one and
	// the address used when the control plane does not know the authority.
	OrigDst netip.AddrPort
	// PeerID is the SPIFFE ID of the verified mTLS peer (inbound), "" when
	// the connection is plaintext.
	PeerID string
	// TLS reports whether the connection was terminated from mTLS.
	TLS bool
}
