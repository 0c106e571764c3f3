package h2

import (
	"net/http"
	"strings"

	"golang.org/x/net/http/httpguts"
	"golang.org/x/net/http2/hpack"
)

// commonLower maps the canonical form of frequent header names to their
// wire form, so encoding them does not allocate.
var commonLower = func() map[string]string {
	m := make(map[string]string)
	for _, k := range []string{
		"accept", "accept-charset", "accept-encoding", "accept-language", "accept-ranges",
		"age", "access-control-allow-origin", "allow", "authorization", "cache-control",
		"content-disposition", "content-encoding", "content-language", "content-length",
		"content-location", "content-range", "content-type", "cookie", "date", "etag",
		"expect", "expires", "from", "host", "if-match", "if-modified-since", "if-none-match",
		"if-unmodified-since", "last-modified", "link", "location", "max-forwards",
		"proxy-authenticate", "proxy-authorization", "range", "referer", "refresh",
		"retry-after", "server", "set-cookie", "strict-transport-security", "trailer",
		"transfer-encoding", "user-agent", "vary", "via", "www-authenticate", "te",
		"x-forwarded-for", "x-forwarded-proto", "x-request-id",
		"grpc-status", "grpc-message", "grpc-status-details-bin", "grpc-encoding",
		"grpc-accept-encoding", "grpc-timeout", "grpc-message-type",
		"meshlet-orig-proto", "meshlet-proxy-error",
	} {
		m[http.CanonicalHeaderKey(k)] = k
	}
	return m
}()

// lower returns a header name in its HTTP/2 wire form.
func lower(k string) string {
	if v, ok := commonLower[k]; ok {
		return v
	}
	for i := 0; i < len(k); i++ {
		if 'A' <= k[i] && k[i] <= 'Z' {
			return strings.ToLower(k)
		}
	}
	return k
}

// connectionSpecific reports a field HTTP/2 forbids (RFC 9113 §8.2.2),
// given its wire (lower-case) name.
func connectionSpecific(k string) bool {
	switch k {
	case "connection", "proxy-connection", "keep-alive", "transfer-encoding", "upgrade":
		return true
	}
	return false
}

// encodeHeader writes the fields of h to enc: names lower-cased, fields
// HTTP/2 forbids (and those skip names) left out, invalid names or values
// dropped rather than sent, and TE kept only as "trailers".
func encodeHeader(enc *encoder, h http.Header, skip func(k string) bool) {
	for k, vv := range h {
		if strings.HasPrefix(k, http.TrailerPrefix) {
			continue
		}
		lk := lower(k)
		if connectionSpecific(lk) || (skip != nil && skip(lk)) || !httpguts.ValidHeaderFieldName(lk) {
			continue
		}
		isTE := lk == "te"
		for _, v := range vv {
			if !httpguts.ValidHeaderFieldValue(v) {
				continue
			}
			if isTE && v != "trailers" {
				continue
			}
			enc.WriteField(hpack.HeaderField{Name: lk, Value: v, Sensitive: lk == "authorization" || lk == "proxy-authorization" || lk == "cookie" && len(v) < 20})
		}
	}
}

// splitTrailers returns the field names declared by Trailer values
// (canonical, the ones HTTP allows as trailers).
func declaredTrailers(vv []string, add func(k string)) {
	for _, v := range vv {
		for _, k := range strings.Split(v, ",") {
			k = http.CanonicalHeaderKey(strings.TrimSpace(k))
			if k != "" && httpguts.ValidTrailerHeader(k) {
				add(k)
			}
		}
	}
}

// headerOf builds a Header from decoded fields. The values share one
// backing array (as net/textproto does), so a header block costs the map
// and one slice instead of a slice per field; a repeated name gets its
// own, growing, slice. skip leaves a field out.
func headerOf(fields []hpack.HeaderField, skip func(hf hpack.HeaderField) bool) http.Header {
	h := make(http.Header, len(fields))
	slab := make([]string, len(fields))
	for i, hf := range fields {
		if skip != nil && skip(hf) {
			continue
		}
		k := http.CanonicalHeaderKey(hf.Name)
		if vv, ok := h[k]; ok {
			h[k] = append(vv[:len(vv):len(vv)], hf.Value)
			continue
		}
		slab[i] = hf.Value
		h[k] = slab[i : i+1 : i+1]
	}
	return h
}

// statusLine is a response's Status for code, without allocating for the
// usual ones.
func statusLine(code int, status string) string {
	switch code {
	case 200:
		return "200 OK"
	case 204:
		return "204 No Content"
	case 404:
		return "404 Not Found"
	case 500:
		return "500 Internal Server Error"
	case 503:
		return "503 Service Unavailable"
	}
	return status + " " + http.StatusText(code)
}
