package h2

import "net/url"

// requestURL parses a request's :path as url.ParseRequestURI does. A path
// of characters that need no escaping (most of them) is cut at its first
// '?' without the general parser.
func requestURL(path string) (*url.URL, error) {
	if path == "" || path[0] != '/' {
		return url.ParseRequestURI(path)
	}
	q := len(path)
	for i := 1; i < len(path); i++ {
		c := path[i]
		if c == '?' {
			q = i
			break
		}
		if !plainPathByte(c) {
			return url.ParseRequestURI(path)
		}
	}
	u := &url.URL{Path: path[:q]}
	if q == len(path) {
		return u, nil
	}
	for i := q + 1; i < len(path); i++ {
		if c := path[i]; c <= ' ' || c >= 0x7f {
			return url.ParseRequestURI(path)
		}
	}
	u.RawQuery = path[q+1:]
	u.ForceQuery = u.RawQuery == ""
	return u, nil
}

// plainPathByte reports a byte a path keeps as is when escaped
// (url.URL.EscapedPath), so the URL needs no RawPath.
func plainPathByte(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	switch c {
	case '-', '_', '.', '~', '$', '&', '+', ',', '/', ':', ';', '=', '@':
		return true
	}
	return false
}
