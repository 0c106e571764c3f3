// Package h2 is the proxy's HTTP/2 connection code: a server that hands
// each stream to an http.Handler, and a client connection whose RoundTrip
// sends a request on one stream of a multiplexed connection. Framing and
// header compression are golang.org/x/net/http2's Framer and hpack; the
// connection state machines, flow control and write path are this package's.
//
// Why not x/net's Server and Transport: per request they hand work between
// four goroutines (the serve loop, a handler, the transport's request
// goroutine and its read loop) and write every frame batch with its own
// flush, often from a goroutine started for it. On a proxy that crosses two
// HTTP/2 hops per request this cost more CPU than everything else on the
// path. Here a connection has one goroutine reading frames; handlers and
// callers write their frames themselves, into one buffered writer per
// connection whose flushes are coalesced: a writer flushes only when no
// other writer is waiting behind it, so concurrent streams share syscalls
// and TLS records.
//
// The reading goroutine never waits for the write lock: the frames it owes
// the peer (SETTINGS and PING acknowledgements, WINDOW_UPDATE, RST_STREAM)
// are queued, bounded, and written by whichever goroutine holds the lock
// next. A peer that stops reading therefore cannot stall the reading of its
// own frames (and the flow-control credit they return).
package h2
