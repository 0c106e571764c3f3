package httpproxy

import (
	"bufio"
	"bytes"
	"net/http"
	"reflect"
	"strings"
	"testing"
)

// The fast path takes a head only when it is unambiguous; every other head
// goes to net/http. What it takes, it reads exactly as net/http does.
func TestParseRequestHead(t *testing.T) {
	accepted := []string{
		"GET / HTTP/1.1\r\nHost: web\r\n\r\n",
		"GET /a/b.c?x=1&y=%20 HTTP/1.1\r\nHost: web:8080\r\nAccept: */*\r\n\r\n",
		"POST /submit HTTP/1.1\r\nHost: web\r\nContent-Length: 5\r\ncontent-type: text/plain\r\n\r\n",
		"GET /q? HTTP/1.1\r\nHost: web\r\n\r\n",
		"GET /%7Euser/a%2Fb HTTP/1.1\r\nHost: web\r\n\r\n",
		"GET / HTTP/1.0\r\n\r\n",
		"GET / HTTP/1.0\r\nConnection: keep-alive\r\nHost: web\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: web\r\nConnection: close\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: web\r\nX-Multi: a\r\nx-multi: b\r\nX-Empty:\r\nX-Space:   v  \r\n\r\n",
		"DELETE /x HTTP/1.1\r\nHost: web\r\nX-UTF8: caf\xc3\xa9\r\n\r\n",
		"M-SEARCH * HTTP/1.1\r\nHost: web\r\n\r\n"[:0] + "PURGE /cache HTTP/1.1\r\nHost: web\r\n\r\n",
	}
	for _, head := range accepted {
		var h reqHead
		if !parseRequestHead([]byte(head), &h) {
			t.Errorf("refused %q", head)
			continue
		}
		agreeWithNetHTTP(t, head, &h)
	}
	refused := map[string]string{
		"bare LF":               "GET / HTTP/1.1\nHost: web\n\n",
		"bare CR":               "GET / HTTP/1.1\rHost: web\r\n\r\n",
		"obs-fold":              "GET / HTTP/1.1\r\nHost: web\r\nX-A: 1\r\n  2\r\n\r\n",
		"transfer-encoding":     "POST / HTTP/1.1\r\nHost: web\r\nTransfer-Encoding: chunked\r\n\r\n",
		"length and chunked":    "POST / HTTP/1.1\r\nHost: web\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
		"expect":                "POST / HTTP/1.1\r\nHost: web\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n",
		"upgrade":               "GET / HTTP/1.1\r\nHost: web\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
		"two hosts":             "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
		"no host in HTTP/1.1":   "GET / HTTP/1.1\r\nAccept: */*\r\n\r\n",
		"bad host":              "GET / HTTP/1.1\r\nHost: a b\r\n\r\n",
		"two lengths":           "POST / HTTP/1.1\r\nHost: web\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n",
		"signed length":         "POST / HTTP/1.1\r\nHost: web\r\nContent-Length: +3\r\n\r\n",
		"negative length":       "POST / HTTP/1.1\r\nHost: web\r\nContent-Length: -1\r\n\r\n",
		"length with junk":      "POST / HTTP/1.1\r\nHost: web\r\nContent-Length: 3 4\r\n\r\n",
		"huge length":           "POST / HTTP/1.1\r\nHost: web\r\nContent-Length: 99999999999999999999\r\n\r\n",
		"absolute-form":         "GET http://web/ HTTP/1.1\r\nHost: web\r\n\r\n",
		"asterisk":              "OPTIONS * HTTP/1.1\r\nHost: web\r\n\r\n",
		"CONNECT":               "CONNECT web:443 HTTP/1.1\r\nHost: web:443\r\n\r\n",
		"h2 preface":            "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
		"HTTP/2.0":              "GET / HTTP/2.0\r\nHost: web\r\n\r\n",
		"HTTP/1.2":              "GET / HTTP/1.2\r\nHost: web\r\n\r\n",
		"lower-case version":    "GET / http/1.1\r\nHost: web\r\n\r\n",
		"two spaces":            "GET  / HTTP/1.1\r\nHost: web\r\n\r\n",
		"space in target":       "GET /a b HTTP/1.1\r\nHost: web\r\n\r\n",
		"fragment":              "GET /a#b HTTP/1.1\r\nHost: web\r\n\r\n",
		"space in header name":  "GET / HTTP/1.1\r\nHost: web\r\nX A: 1\r\n\r\n",
		"space before colon":    "GET / HTTP/1.1\r\nHost : web\r\n\r\n",
		"empty header name":     "GET / HTTP/1.1\r\nHost: web\r\n: v\r\n\r\n",
		"control char in value": "GET / HTTP/1.1\r\nHost: web\r\nX-A: a\x01b\r\n\r\n",
		"NUL":                   "GET / HTTP/1.1\r\nHost: web\r\nX-A: a\x00b\r\n\r\n",
		"bad method":            "G(T / HTTP/1.1\r\nHost: web\r\n\r\n",
		"no empty line":         "GET / HTTP/1.1\r\nHost: web\r\n",
		"bytes after the head":  "GET / HTTP/1.1\r\nHost: web\r\n\r\nX",
		"too many headers":      "GET / HTTP/1.1\r\nHost: web\r\n" + strings.Repeat("X-A: 1\r\n", maxFastHeaders) + "\r\n",
	}
	for name, head := range refused {
		var h reqHead
		if parseRequestHead([]byte(head), &h) {
			t.Errorf("%s: accepted %q", name, head)
		}
	}
}

// agreeWithNetHTTP fails t unless net/http reads head as h says.
func agreeWithNetHTTP(t testing.TB, head string, h *reqHead) {
	t.Helper()
	r, err := http.ReadRequest(bufio.NewReader(strings.NewReader(head)))
	if err != nil {
		t.Fatalf("fast path accepted %q, net/http refuses it: %v", head, err)
	}
	if r.ContentLength < 0 {
		r.ContentLength = 0
	}
	delete(r.Header, "Host")
	switch {
	case r.Method != h.method:
		t.Fatalf("%q: method %q, net/http %q", head, h.method, r.Method)
	case r.RequestURI != h.target:
		t.Fatalf("%q: target %q, net/http %q", head, h.target, r.RequestURI)
	case r.URL.Path != h.url.Path || r.URL.RawPath != h.url.RawPath || r.URL.RawQuery != h.url.RawQuery ||
		r.URL.ForceQuery != h.url.ForceQuery || r.URL.RequestURI() != h.url.RequestURI():
		t.Fatalf("%q: URL %#v, net/http %#v", head, h.url, *r.URL)
	case r.Host != h.host:
		t.Fatalf("%q: host %q, net/http %q", head, h.host, r.Host)
	case r.ContentLength != h.contentLength:
		t.Fatalf("%q: content length %d, net/http %d", head, h.contentLength, r.ContentLength)
	case r.Close != h.close:
		t.Fatalf("%q: close %v, net/http %v", head, h.close, r.Close)
	case r.ProtoMinor != h.minor:
		t.Fatalf("%q: HTTP/1.%d, net/http HTTP/1.%d", head, h.minor, r.ProtoMinor)
	case !reflect.DeepEqual(r.Header, h.header):
		t.Fatalf("%q: header %v, net/http %v", head, h.header, r.Header)
	}
}

func FuzzParseRequestHead(f *testing.F) {
	f.Add([]byte("GET /a?b HTTP/1.1\r\nHost: web\r\nX-A: 1\r\n\r\n"))
	f.Add([]byte("POST /p HTTP/1.0\r\nContent-Length: 12\r\nConnection: keep-alive\r\n\r\n"))
	f.Add([]byte("GET /%41%2f HTTP/1.1\r\nhost: web\r\nconnection: close\r\n\r\n"))
	f.Fuzz(func(t *testing.T, head []byte) {
		i := bytes.Index(head, crlfcrlf)
		if i < 0 {
			return
		}
		head = head[:i+4]
		var h reqHead
		if parseRequestHead(head, &h) {
			agreeWithNetHTTP(t, string(head), &h)
		}
	})
}

// The fast client reads what it accepts exactly as net/http's ReadResponse.
func TestParseResponseHead(t *testing.T) {
	get, _ := http.NewRequest("GET", "http://web/", nil)
	head, _ := http.NewRequest("HEAD", "http://web/", nil)
	accepted := []string{
		"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Type: text/plain\r\n\r\n",
		"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nx-multi: a\r\nX-Multi: b\r\n\r\n",
		"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\n",
		"HTTP/1.0 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n",
		"HTTP/1.1 299\r\nContent-Length: 2\r\n\r\n",
		"HTTP/1.1 404 Not  Found \r\nContent-Length: 9\r\n\r\n",
	}
	for _, s := range accepted {
		res, ok := parseResponseHead([]byte(s), get)
		if !ok {
			t.Errorf("refused %q", s)
			continue
		}
		agreeResponse(t, s, get, res)
	}
	refused := map[string]string{
		"interim":            "HTTP/1.1 100 Continue\r\n\r\n",
		"no content":         "HTTP/1.1 204 No Content\r\n\r\n",
		"not modified":       "HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n",
		"chunked":            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
		"length and chunked": "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
		"close-delimited":    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n",
		"two lengths":        "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n",
		"bad length":         "HTTP/1.1 200 OK\r\nContent-Length: 5x\r\n\r\n",
		"HTTP/2":             "HTTP/2.0 200 OK\r\nContent-Length: 5\r\n\r\n",
		"short code":         "HTTP/1.1 20 OK\r\nContent-Length: 5\r\n\r\n",
		"long code":          "HTTP/1.1 2000 OK\r\nContent-Length: 5\r\n\r\n",
		"obs-fold":           "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: 1\r\n 2\r\n\r\n",
		"bare LF":            "HTTP/1.1 200 OK\nContent-Length: 5\n\n",
	}
	for name, s := range refused {
		if _, ok := parseResponseHead([]byte(s), get); ok {
			t.Errorf("%s: accepted %q", name, s)
		}
	}
	if _, ok := parseResponseHead([]byte(accepted[0]), head); ok {
		t.Error("accepted the response to a HEAD request")
	}
}

func agreeResponse(t testing.TB, head string, req *http.Request, res *http.Response) {
	t.Helper()
	want, err := http.ReadResponse(bufio.NewReader(strings.NewReader(head)), req)
	if err != nil {
		t.Fatalf("fast client accepted %q, net/http refuses it: %v", head, err)
	}
	delete(want.Header, "Connection") // net/http drops Connection: close; the proxy strips Connection anyway
	got := res.Header.Clone()
	delete(got, "Connection")
	switch {
	case want.StatusCode != res.StatusCode || want.Status != res.Status:
		t.Fatalf("%q: status %d %q, net/http %d %q", head, res.StatusCode, res.Status, want.StatusCode, want.Status)
	case want.ProtoMinor != res.ProtoMinor || want.Proto != res.Proto:
		t.Fatalf("%q: %s, net/http %s", head, res.Proto, want.Proto)
	case want.ContentLength != res.ContentLength:
		t.Fatalf("%q: content length %d, net/http %d", head, res.ContentLength, want.ContentLength)
	case want.Close != res.Close:
		t.Fatalf("%q: close %v, net/http %v", head, res.Close, want.Close)
	case !reflect.DeepEqual(want.Header, got):
		t.Fatalf("%q: header %v, net/http %v", head, got, want.Header)
	}
}

func FuzzParseResponseHead(f *testing.F) {
	f.Add([]byte("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: b\r\n\r\n"))
	f.Add([]byte("HTTP/1.0 404 Nope\r\ncontent-length: 0\r\nconnection: keep-alive\r\n\r\n"))
	get, _ := http.NewRequest("GET", "http://web/", nil)
	f.Fuzz(func(t *testing.T, head []byte) {
		i := bytes.Index(head, crlfcrlf)
		if i < 0 {
			return
		}
		head = head[:i+4]
		if res, ok := parseResponseHead(head, get); ok {
			agreeResponse(t, string(head), get, res)
		}
	})
}
