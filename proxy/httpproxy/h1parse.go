package httpproxy

import (
	"bufio"
	"bytes"
	"net/http"
	"net/textproto"
	"net/url"
	"strings"

	"golang.org/x/net/http/httpguts"
)

// maxFastHeaders bounds the header lines of a request the fast path takes.
const maxFastHeaders = 64

// reqHead is a request head the fast HTTP/1 path accepted.
type reqHead struct {
	method, target string
	minor          int // HTTP/1.<minor>
	url            url.URL
	header         http.Header
	host           string
	contentLength  int64
	close          bool // the client asked to close after this request
}

// parseRequestHead parses head (a request line and header lines, ending
// with an empty line) for the fast path. It accepts only what is
// unambiguous: CRLF line ends, an origin-form target, HTTP/1.0 or 1.1,
// token header names, values without control characters, at most one Host
// and one Content-Length, and no Transfer-Encoding, Expect or Upgrade. It
// returns false for anything else, and the request then goes to net/http,
// whose stricter and complete parsing answers or serves it. So the fast path
// never accepts a request net/http would refuse, and never decides how an
// odd one is framed.
func parseRequestHead(head []byte, h *reqHead) bool {
	// One string holds the whole head; every field is a slice of it.
	s := string(head)
	if bytes.IndexByte(head, 0) >= 0 {
		return false
	}
	line, rest, ok := cutLine(s)
	if !ok {
		return false
	}
	sp1 := strings.IndexByte(line, ' ')
	if sp1 <= 0 {
		return false
	}
	sp2 := strings.IndexByte(line[sp1+1:], ' ')
	if sp2 <= 0 {
		return false
	}
	h.method, h.target = internMethod(line[:sp1]), line[sp1+1:sp1+1+sp2]
	switch line[sp1+2+sp2:] {
	case "HTTP/1.1":
		h.minor = 1
	case "HTTP/1.0":
		h.minor = 0
	default:
		return false
	}
	if !isToken(h.method) || h.method == http.MethodConnect || h.method == "PRI" || !parseTarget(h.target, &h.url) {
		return false
	}
	if h.header, ok = parseHeaderLines(rest); !ok {
		return false
	}
	hdr := h.header
	if hdr[hdrTransferEncoder] != nil || hdr["Expect"] != nil || hdr[hdrUpgrade] != nil {
		return false
	}
	h.contentLength = 0
	if cl := hdr[hdrContentLength]; cl != nil {
		n, ok := parseLength(cl[0])
		if len(cl) > 1 || !ok {
			return false
		}
		h.contentLength = n
	}
	hosts := hdr["Host"]
	switch {
	case len(hosts) > 1, len(hosts) == 0 && h.minor == 1:
		return false
	case len(hosts) == 1:
		h.host = hosts[0]
		delete(hdr, "Host") // as net/http: Request.Host holds it
	default:
		h.host = ""
	}
	if !httpguts.ValidHostHeader(h.host) {
		return false
	}
	if h.minor == 0 {
		h.close = !httpguts.HeaderValuesContainsToken(hdr[hdrConnection], "keep-alive")
	} else {
		h.close = httpguts.HeaderValuesContainsToken(hdr[hdrConnection], "close")
	}
	return true
}

// parseHeaderLines returns the header lines of rest (ending with an empty
// line, and nothing after it). It refuses obs-folds, names that are not
// tokens, values with control characters, and more than maxFastHeaders
// lines.
func parseHeaderLines(rest string) (http.Header, bool) {
	lines := strings.Count(rest, "\r\n")
	h := make(http.Header, lines)
	// The values of all lines share one backing array: one allocation
	// instead of one per header.
	vals := make([]string, 0, lines)
	for n := 0; ; n++ {
		line, after, ok := cutLine(rest)
		if !ok {
			return nil, false
		}
		rest = after
		if line == "" {
			return h, rest == ""
		}
		if n >= maxFastHeaders || line[0] == ' ' || line[0] == '\t' { // obs-fold
			return nil, false
		}
		colon := strings.IndexByte(line, ':')
		if colon <= 0 {
			return nil, false
		}
		name, value := line[:colon], textproto.TrimString(line[colon+1:])
		if !isToken(name) || !httpguts.ValidHeaderFieldValue(value) {
			return nil, false
		}
		key := canonicalKey(name)
		if vv := h[key]; vv != nil {
			h[key] = append(vv, value) // copies: vv's capacity ends at its one value
		} else {
			vals = append(vals, value)
			h[key] = vals[len(vals)-1 : len(vals) : len(vals)]
		}
	}
}

// cutLine splits s at the first CRLF. A bare CR or LF before it is refused.
func cutLine(s string) (line, rest string, ok bool) {
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\n':
			return "", "", false
		case '\r':
			if i+1 < len(s) && s[i+1] == '\n' {
				return s[:i], s[i+2:], true
			}
			return "", "", false
		}
	}
	return "", "", false
}

// parseTarget fills u from an origin-form request target ("/path?query").
// Targets whose path needs decoding or re-encoding take url.ParseRequestURI,
// as in net/http, so the path sent upstream is exactly the one received.
func parseTarget(t string, u *url.URL) bool {
	if t == "" || t[0] != '/' {
		return false
	}
	for i := 0; i < len(t); i++ {
		if c := t[i]; c <= ' ' || c >= 0x7f || c == '#' {
			return false
		}
	}
	*u = url.URL{}
	path, query := t, ""
	if i := strings.IndexByte(t, '?'); i >= 0 {
		path, query = t[:i], t[i+1:]
		u.ForceQuery = query == ""
	}
	for i := 0; i < len(path); i++ {
		if !plainPathByte(path[i]) {
			pu, err := url.ParseRequestURI(t)
			if err != nil {
				return false
			}
			*u = *pu
			return true
		}
	}
	u.Path, u.RawQuery = path, query
	return true
}

// plainPathByte reports a byte net/url keeps as is in a path, in both
// directions: decoding does not change it and EscapedPath does not escape it.
func plainPathByte(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	switch c {
	case '-', '_', '.', '~', '/', '$', '&', '+', ',', ':', ';', '=', '@':
		return true
	}
	return false
}

// canonicalKey returns the canonical form of a header name (a valid
// token): common names, and names already canonical, without allocating.
func canonicalKey(name string) string {
	upper := true
	for i := 0; i < len(name); i++ {
		c := name[i]
		if upper && 'a' <= c && c <= 'z' || !upper && 'A' <= c && c <= 'Z' {
			return textproto.CanonicalMIMEHeaderKey(name)
		}
		upper = c == '-'
	}
	return name
}

// internMethod returns common methods as constants, so that comparisons
// with them (method == http.MethodGet) are quick pointer-equal checks.
func internMethod(m string) string {
	switch m {
	case http.MethodGet:
		return http.MethodGet
	case http.MethodPost:
		return http.MethodPost
	case http.MethodPut:
		return http.MethodPut
	case http.MethodHead:
		return http.MethodHead
	case http.MethodDelete:
		return http.MethodDelete
	case http.MethodPatch:
		return http.MethodPatch
	case http.MethodOptions:
		return http.MethodOptions
	}
	return m
}

// parseResponseHead parses head (a status line and header lines) for the
// fast client: a final response of HTTP/1.0 or 1.1 with a body framed by one
// valid Content-Length, to a request other than HEAD. It returns false for
// anything else (interim and bodiless responses, chunked or close-delimited
// bodies, anything odd), which net/http's ReadResponse then reads from the
// same bytes.
func parseResponseHead(head []byte, req *http.Request) (*http.Response, bool) {
	if req.Method == http.MethodHead || bytes.IndexByte(head, 0) >= 0 {
		return nil, false
	}
	s := string(head)
	line, rest, ok := cutLine(s)
	if !ok || len(line) < 12 || (len(line) > 12 && line[12] != ' ') {
		return nil, false
	}
	res := &http.Response{Request: req, ProtoMajor: 1}
	switch line[:9] {
	case "HTTP/1.1 ":
		res.Proto, res.ProtoMinor = "HTTP/1.1", 1
	case "HTTP/1.0 ":
		res.Proto = "HTTP/1.0"
	default:
		return nil, false
	}
	code := 0
	for i := 9; i < 12; i++ {
		c := line[i]
		if c < '0' || c > '9' {
			return nil, false
		}
		code = code*10 + int(c-'0')
	}
	if code < 200 || code == http.StatusNoContent || code == http.StatusNotModified {
		return nil, false
	}
	res.StatusCode, res.Status = code, line[9:]
	if res.Header, ok = parseHeaderLines(rest); !ok {
		return nil, false
	}
	cl := res.Header[hdrContentLength]
	if len(cl) != 1 || res.Header[hdrTransferEncoder] != nil {
		return nil, false
	}
	n, ok := parseLength(cl[0])
	if !ok {
		return nil, false
	}
	res.ContentLength = n
	conn := res.Header[hdrConnection]
	if res.ProtoMinor == 0 {
		res.Close = !httpguts.HeaderValuesContainsToken(conn, "keep-alive")
	} else {
		res.Close = httpguts.HeaderValuesContainsToken(conn, "close")
	}
	return res, true
}

// peekHead returns the message head at the start of br, still buffered,
// reading until it is complete. nil without error: it does not fit br, or
// has a bare LF; net/http's parsing takes it.
func peekHead(br *bufio.Reader) ([]byte, error) {
	for {
		buf, _ := br.Peek(br.Buffered())
		if i := bytes.Index(buf, crlfcrlf); i >= 0 {
			return buf[:i+4], nil
		}
		if len(buf) >= br.Size() || bareLF(buf) {
			return nil, nil
		}
		if _, err := br.Peek(len(buf) + 1); err != nil {
			return nil, err
		}
	}
}
