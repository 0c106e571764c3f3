// Package meshtls builds the TLS configurations proxies use between each
// other: TLS 1.3, both sides presenting SPIFFE X.509 SVIDs, the client
// requiring exactly the identity the control plane named for the endpoint.
//
// The configurations read the SVID and bundle from a Source on every
// handshake (go-spiffe's tlsconfig callbacks), so certificate rotation takes
// effect on the next connection without a restart or a lock on the hot path.
package meshtls

import (
	"crypto/tls"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
)

// Source supplies the proxy's current SVID and trust bundle. The identity
// client (proxy/identity) implements it.
type Source interface {
	x509svid.Source
	x509bundle.Source
}

// ALPN protocol names negotiated between proxies. They tell the accepting
// proxy what the connection carries, since after the TLS handshake there is
// nothing left to detect.
const (
	// ALPNHTTP2 carries HTTP requests of any application protocol,
	// multiplexed as HTTP/2.
	ALPNHTTP2 = "h2"
	// ALPNHTTP1 carries HTTP/1.1 requests that cannot travel as HTTP/2,
	// such as protocol upgrades (WebSocket).
	ALPNHTTP1 = "http/1.1"
	// ALPNOpaque carries an opaque TCP stream.
	ALPNOpaque = "meshlet.io/opaque"
)

// ClientConfig returns the configuration to originate mTLS to a proxy whose
// SPIFFE ID must be exactly peer.
func ClientConfig(src Source, peer spiffeid.ID, alpn ...string) *tls.Config {
	c := tlsconfig.MTLSClientConfig(src, src, tlsconfig.AuthorizeID(peer))
	c.MinVersion = tls.VersionTLS13
	c.NextProtos = alpn
	return c
}

// ServerConfig returns the configuration to accept mTLS from mesh peers: the
// client must present a certificate that chains to the trust bundle of its
// trust domain, as the Source knows it. Which identities may call what is an
// authorization decision taken after the handshake, from PeerID.
func ServerConfig(src Source, alpn ...string) *tls.Config {
	c := tlsconfig.MTLSServerConfig(src, src, tlsconfig.AuthorizeAny())
	c.MinVersion = tls.VersionTLS13
	c.NextProtos = alpn
	return c
}

// PeerID returns the SPIFFE ID of the verified peer of a completed handshake.
func PeerID(cs tls.ConnectionState) (spiffeid.ID, bool) {
	if !cs.HandshakeComplete || len(cs.PeerCertificates) == 0 {
		return spiffeid.ID{}, false
	}
	id, err := x509svid.IDFromCert(cs.PeerCertificates[0])
	if err != nil {
		return spiffeid.ID{}, false
	}
	return id, true
}

// IsClientHello reports whether b, the first bytes a client sent, start a
// TLS handshake record carrying a ClientHello. It needs at least 6 bytes to
// say yes: record type 22 (handshake), major version 3, then handshake type 1.
func IsClientHello(b []byte) bool {
	return len(b) >= 6 && b[0] == 22 && b[1] == 3 && b[5] == 1
}
