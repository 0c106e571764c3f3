// Package detect tells, from the first bytes a client sends, which protocol
// a proxied connection speaks: a TLS ClientHello, the HTTP/2 prior-knowledge
// preface, an HTTP/1.x request line, or anything else (opaque TCP).
//
// Detection peeks without losing bytes: Detect returns a Conn that replays
// what was read before reading on from the socket, and that hands out the
// bare *net.TCPConn so opaque forwarding can still use splice(2).
package detect

// Protocol is the outcome of detection.
type Protocol uint8

const (
	// Opaque is anything not recognised: bytes are forwarded as they are.
	Opaque Protocol = iota
	// TLS is a TLS handshake record carrying a ClientHello.
	TLS
	// HTTP1 is an HTTP/1.0 or HTTP/1.1 request line.
	HTTP1
	// HTTP2 is the HTTP/2 prior-knowledge (h2c) connection preface.
	HTTP2
)

// String returns the name used in metrics and logs.
func (p Protocol) String() string {
	switch p {
	case TLS:
		return "tls"
	case HTTP1:
		return "http1"
	case HTTP2:
		return "http2"
	}
	return "opaque"
}

// h2Preface is what an HTTP/2 client with prior knowledge sends first
// (RFC 9113 §3.4).
const h2Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

// maxMethod bounds the method token of an HTTP/1 request line. The longest
// registered methods (e.g. UPDATEREDIRECTREF, 17 bytes) fit; a longer token
// is far more likely to be binary data than a request.
const maxMethod = 24

// Classify decides what b, the first bytes of a connection, start. more is
// true when b is a proper prefix of something recognisable and more bytes
// could decide; then p is what b is if no more bytes come (Opaque).
// Classify never reads past len(b) and never allocates.
func Classify(b []byte) (p Protocol, more bool) {
	if len(b) == 0 {
		return Opaque, true
	}
	if b[0] == 22 { // TLS record type handshake
		return classifyTLS(b)
	}
	if b[0] == 'P' {
		n := min(len(b), len(h2Preface))
		if string(b[:n]) == h2Preface[:n] {
			if n == len(h2Preface) {
				return HTTP2, false
			}
			return Opaque, true
		}
	}
	return classifyHTTP1(b)
}

// classifyTLS recognises the 5-byte TLS record header (type 22, version
// 3.x, length 1..2^14+2048) followed by the handshake type ClientHello (1).
// The ClientHello's record version is 3.1 for TLS 1.0 and later, and 3.0
// for SSL 3; both are accepted so old clients are still seen as TLS.
func classifyTLS(b []byte) (Protocol, bool) {
	if len(b) >= 2 && b[1] != 3 {
		return Opaque, false
	}
	if len(b) >= 3 && b[2] > 4 {
		return Opaque, false
	}
	if len(b) >= 5 {
		n := int(b[3])<<8 | int(b[4])
		if n == 0 || n > 1<<14+2048 {
			return Opaque, false
		}
	}
	if len(b) < 6 {
		return Opaque, true
	}
	if b[5] != 1 {
		return Opaque, false
	}
	return TLS, false
}

// classifyHTTP1 recognises "METHOD SP request-target SP HTTP/1.d CRLF"
// (RFC 9112 §3), also accepting a bare LF as the line end, as servers do.
func classifyHTTP1(b []byte) (Protocol, bool) {
	// Method: one or more token characters, then a space.
	i := 0
	for i < len(b) && isTchar(b[i]) {
		i++
	}
	switch {
	case i > maxMethod:
		return Opaque, false
	case i == len(b):
		return Opaque, true
	case i == 0 || b[i] != ' ':
		return Opaque, false
	}
	i++
	// Request target: visible ASCII, no spaces (obs-text bytes ≥ 0x80 are
	// tolerated, as in real-world paths).
	start := i
	for i < len(b) && (b[i] > ' ' && b[i] != 0x7f) {
		i++
	}
	if i == len(b) {
		return Opaque, true
	}
	if i == start || b[i] != ' ' {
		return Opaque, false
	}
	i++
	rest := b[i:]
	const version = "HTTP/1."
	n := min(len(rest), len(version))
	if string(rest[:n]) != version[:n] {
		return Opaque, false
	}
	if len(rest) <= len(version) {
		return Opaque, true
	}
	if d := rest[len(version)]; d != '0' && d != '1' {
		return Opaque, false
	}
	rest = rest[len(version)+1:]
	switch {
	case len(rest) == 0:
		return Opaque, true
	case rest[0] == '\n':
		return HTTP1, false
	case rest[0] != '\r':
		return Opaque, false
	case len(rest) == 1:
		return Opaque, true
	case rest[1] == '\n':
		return HTTP1, false
	}
	return Opaque, false
}

// isTchar reports whether c may appear in an HTTP token (RFC 9110 §5.6.2).
func isTchar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	switch c {
	case '!', '#', '$', '%', '&', '\'', '*', '+', '-', '.', '^', '_', '`', '|', '~':
		return true
	}
	return false
}
