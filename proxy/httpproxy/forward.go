package httpproxy

import (
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
)

var valEmpty = []string{""}

// headerSetter is a ResponseWriter that takes a header map as its own
// (proxy/h2's), so a response's header is passed on without a copy.
type headerSetter interface{ SetHeader(http.Header) }

// forward sends the request upstream and streams the response back. It is
// the innermost layer.
func (p *Proxy) forward(c *call) error {
	r := c.r
	out := r.WithContext(c) // shallow: shares r.Header, already stripped of hop-by-hop fields
	c.url = *r.URL
	c.url.Scheme, c.url.Host = schemes[c.up], c.addr
	c.url.User = nil // userinfo of an absolute-form target would become an Authorization header
	out.URL = &c.url
	out.RequestURI = ""
	out.Close = false
	out.Body = nil // issue 16036: a nil body lets the transport retry on a dead pooled connection
	if r.ContentLength != 0 && r.Body != nil && r.Body != http.NoBody {
		c.body.rc = r.Body
		out.Body = &c.body
		defer c.body.end()
	}
	h := out.Header
	if c.teTrailers {
		h[hdrTE] = valTrailers
	}
	if c.upgrade != nil {
		h[hdrConnection], h[hdrUpgrade] = valUpgrade, c.upgrade
	}
	if c.up == upMeshH2 && r.ProtoMajor == 1 {
		h[hdrOrigProto] = valOrigHTTP11
	}
	if _, ok := h["User-Agent"]; !ok {
		h["User-Agent"] = valEmpty // or the transport adds Go's own
	}

	res, err := p.up.rt[c.up].RoundTrip(out)
	if err != nil {
		return err
	}
	c.gotHeaders(res.StatusCode)
	if res.StatusCode == http.StatusSwitchingProtocols {
		return c.tunnel(res)
	}

	stripHopByHop(res.Header)
	dst := c.w.Header()
	if hs, ok := c.w.(headerSetter); ok && len(dst) == 0 && res.Header != nil {
		hs.SetHeader(res.Header) // the transports' maps are not reused: the response's is ours to give
		dst = res.Header
	} else {
		for k, vv := range res.Header {
			dst[k] = vv // the transport's maps are not reused: sharing the slices is safe
		}
	}
	// Trailers the upstream declared are declared downstream too (an
	// HTTP/1 client needs the declaration); others, like gRPC's, are sent
	// with http.TrailerPrefix at the end.
	var declared []string
	if len(res.Trailer) > 0 {
		declared = make([]string, 0, len(res.Trailer))
		for k := range res.Trailer {
			declared = append(declared, k)
		}
		dst[hdrTrailer] = []string{strings.Join(declared, ", ")}
	}
	c.status = res.StatusCode
	c.w.WriteHeader(res.StatusCode)
	c.wrote = true
	if res.ContentLength < 0 && !bodyReady(res.Body) {
		// A stream (gRPC, server-sent events, a long poll) may not send its
		// first bytes for a while: its head goes out now. A body of known
		// length, or one already here, follows at once and shares the
		// head's write.
		if fl, ok := c.w.(http.Flusher); ok {
			fl.Flush()
		}
	}

	err = c.copyBody(res)
	res.Body.Close() // also fills res.Trailer
	if err != nil {
		return err
	}
	c.grpcStatus = grpcStatusOf(res) // before the trailers join dst, which may be res.Header
	for k, vv := range res.Trailer {
		if !slices.Contains(declared, k) {
			k = trailerKey(k)
		}
		dst[k] = vv
	}
	return nil
}

// trailerKey returns http.TrailerPrefix+k, without allocating for the
// trailers gRPC sends on every response.
func trailerKey(k string) string {
	switch k {
	case "Grpc-Status":
		return http.TrailerPrefix + "Grpc-Status"
	case "Grpc-Message":
		return http.TrailerPrefix + "Grpc-Message"
	case "Grpc-Status-Details-Bin":
		return http.TrailerPrefix + "Grpc-Status-Details-Bin"
	}
	return http.TrailerPrefix + k
}

// grpcStatusOf returns the response's grpc-status (trailer, or header of a
// Trailers-Only response), "" when absent. Values other than the codes 0-16
// are reported as "unknown" to keep the metric label bounded.
func grpcStatusOf(res *http.Response) string {
	v := res.Trailer[hdrGRPCStatus]
	if len(v) == 0 {
		if v = res.Header[hdrGRPCStatus]; len(v) == 0 {
			return ""
		}
	}
	s := v[0]
	switch len(s) {
	case 1:
		if s[0] >= '0' && s[0] <= '9' {
			return s
		}
	case 2:
		if s[0] == '1' && s[1] >= '0' && s[1] <= '6' {
			return s
		}
	}
	return "unknown"
}

// bodyReady reports whether a body's next Read returns at once, for the
// bodies that can tell (package h2's responses); others are assumed not to.
func bodyReady(b io.Reader) bool {
	r, ok := b.(interface{ Ready() bool })
	return ok && r.Ready()
}

// bufSize is the copy buffer: large enough for an HTTP/2 DATA frame of the
// default maximum size and most bodies in one read.
const bufSize = 32 << 10

var bufPool = sync.Pool{New: func() any { return new([bufSize]byte) }}

// copyBody streams the response body downstream. A response of unknown
// length (chunked HTTP/1, most HTTP/2 and every gRPC response) is flushed
// after each read, so streamed messages are not held back in buffers; one
// of known length is left to the server's buffering.
func (c *call) copyBody(res *http.Response) error {
	var fl http.Flusher
	if res.ContentLength < 0 {
		fl, _ = c.w.(http.Flusher)
	}
	bp := bufPool.Get().(*[bufSize]byte)
	defer bufPool.Put(bp)
	buf := bp[:]
	for {
		n, rerr := res.Body.Read(buf)
		if n > 0 {
			if _, werr := c.w.Write(buf[:n]); werr != nil {
				return &proxyError{reason: reasonClientGone, err: werr}
			}
			if fl != nil && !bodyReady(res.Body) {
				fl.Flush() // only before a read that would wait
			}
		}
		if rerr == io.EOF {
			return nil
		}
		if rerr != nil {
			return rerr
		}
	}
}
