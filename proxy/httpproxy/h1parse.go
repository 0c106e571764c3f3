package httpproxy

import (
	"bytes"
	"net/http"
	"net/textproto"
	"net/url"

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
	sp1 := indexByte(line, ' ')
	if sp1 <= 0 {
		return false
	}
	sp2 := indexByte(line[sp1+1:], ' ')
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
	if !validMethod(h.method) || h.method == http.MethodConnect || h.method == "PRI" || !parseTarget(h.target, &h.url) {
		return false
	}
	h.header = make(http.Header, 8)
	h.contentLength = 0
	h.host = ""
	var hosts, lengths, n int
	var connection []string
	for {
		line, rest, ok = cutLine(rest)
		if !ok {
			return false
		}
		if line == "" {
			break
		}
		if n++; n > maxFastHeaders || line[0] == ' ' || line[0] == '\t' { // obs-fold
			return false
		}
		colon := indexByte(line, ':')
		if colon <= 0 {
			return false
		}
		name, value := line[:colon], textproto.TrimString(line[colon+1:])
		for i := 0; i < len(name); i++ {
			if !httpguts.IsTokenRune(rune(name[i])) {
				return false
			}
		}
		if !httpguts.ValidHeaderFieldValue(value) {
			return false
		}
		key := canonicalKey(name)
		switch key {
		case "Host":
			hosts++
			h.host = value
		case hdrContentLength:
			lengths++
			cl, ok := parseLength(value)
			if !ok {
				return false
			}
			h.contentLength = cl
		case hdrTransferEncoder, "Expect", hdrUpgrade:
			return false
		case hdrConnection:
			connection = append(connection, value)
		}
		if vv := h.header[key]; vv != nil {
			h.header[key] = append(vv, value)
		} else {
			h.header[key] = []string{value}
		}
	}
	if rest != "" || lengths > 1 || hosts > 1 || (hosts == 0 && h.minor == 1) || !httpguts.ValidHostHeader(h.host) {
		return false
	}
	delete(h.header, "Host") // as net/http: Request.Host holds it
	if h.minor == 0 {
		h.close = !httpguts.HeaderValuesContainsToken(connection, "keep-alive")
	} else {
		h.close = httpguts.HeaderValuesContainsToken(connection, "close")
	}
	return true
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

func indexByte(s string, c byte) int {
	for i := 0; i < len(s); i++ {
		if s[i] == c {
			return i
		}
	}
	return -1
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
	if i := indexByte(t, '?'); i >= 0 {
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
