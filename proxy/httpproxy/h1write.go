package httpproxy

import (
	"bufio"
	"errors"
	"net/http"
	"strconv"

	"golang.org/x/net/http/httpguts"
)

// validRequest checks req's head as net/http's Transport does before
// writing it: a method, Host, header name or value that could split the
// request is refused.
func validRequest(req *http.Request) error {
	host := req.Host
	if host == "" {
		host = req.URL.Host
	}
	if !httpguts.ValidHostHeader(host) {
		return errors.New("invalid Host " + strconv.Quote(host))
	}
	if !isToken(req.Method) {
		return errors.New("invalid method " + strconv.Quote(req.Method))
	}
	for k, vv := range req.Header {
		if !httpguts.ValidHeaderFieldName(k) {
			return errors.New("invalid header field name " + strconv.Quote(k))
		}
		for _, v := range vv {
			if !httpguts.ValidHeaderFieldValue(v) {
				return errors.New("invalid header field value for " + k)
			}
		}
	}
	return nil
}

// writeRequest writes req's head (checked by validRequest), as net/http's
// Transport would for an HTTP/1.1 request of known length, then body, and
// flushes.
func writeRequest(bw *bufio.Writer, req *http.Request, body []byte) error {
	host := req.Host
	if host == "" {
		host = req.URL.Host
	}
	bw.WriteString(req.Method)
	bw.WriteByte(' ')
	bw.WriteString(req.URL.RequestURI())
	bw.WriteString(" HTTP/1.1\r\nHost: ")
	bw.WriteString(host)
	bw.WriteString("\r\n")
	for k, vv := range req.Header {
		switch k {
		case "Host", hdrContentLength, hdrTransferEncoder, hdrTrailer, hdrConnection:
			continue // written from the request's fields, or hop-by-hop
		}
		for _, v := range vv {
			if v == "" && k == "User-Agent" {
				continue // an empty User-Agent means: send none
			}
			bw.WriteString(k)
			bw.WriteString(": ")
			bw.WriteString(v)
			bw.WriteString("\r\n")
		}
	}
	switch {
	case len(body) > 0:
		bw.WriteString("Content-Length: ")
		bw.Write(strconv.AppendInt(bw.AvailableBuffer(), int64(len(body)), 10))
		bw.WriteString("\r\n")
	case req.Method == http.MethodPost || req.Method == http.MethodPut || req.Method == http.MethodPatch:
		bw.WriteString("Content-Length: 0\r\n") // as net/http: these methods say their body is empty
	}
	if req.Close {
		bw.WriteString("Connection: close\r\n")
	}
	bw.WriteString("\r\n")
	bw.Write(body)
	return bw.Flush()
}

// isToken reports whether m is an HTTP token (a method, a header name).
func isToken(m string) bool {
	if m == "" {
		return false
	}
	for i := 0; i < len(m); i++ {
		if !httpguts.IsTokenRune(rune(m[i])) {
			return false
		}
	}
	return true
}
