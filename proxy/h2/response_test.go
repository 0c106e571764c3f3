package h2_test

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/meshlet/meshlet/proxy/h2"
)

// A declared trailer whose value the handler sets after WriteHeader, but
// before the head was sent (it waits to share a write with the body), is
// sent as a trailer only, not in the head too.
func TestDeclaredTrailersNotInHeaders(t *testing.T) {
	ts := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Trailer", "X-T")
		w.WriteHeader(200)
		w.Write([]byte("hi"))
		w.Header().Set("X-T", "v") // as forward does after copyBody
	}), nil)
	cc := dialClient(t, ts.addr, h2.ClientConfig{})
	req, _ := http.NewRequest("GET", ts.url("/"), nil)
	res, err := cc.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	io.ReadAll(res.Body)
	res.Body.Close()
	t.Logf("header=%v trailer=%v", res.Header, res.Trailer)
	if res.Header.Get("X-T") != "" {
		t.Errorf("declared trailer X-T sent in the response HEADERS too: %q", res.Header["X-T"])
	}
}

// A complete response (END_STREAM received) is kept when the connection
// closes while the request body is still being sent: a 413 is read whole.
func TestCompleteResponseSurvivesConnClose(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		buf := make([]byte, len(http2.ClientPreface))
		io.ReadFull(c, buf)
		fr := http2.NewFramer(c, c)
		fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
		fr.WriteSettings()
		for {
			f, err := fr.ReadFrame()
			if err != nil {
				return
			}
			if hf, ok := f.(*http2.MetaHeadersFrame); ok {
				var hb bytes.Buffer
				enc := hpack.NewEncoder(&hb)
				enc.WriteField(hpack.HeaderField{Name: ":status", Value: "413"})
				fr.WriteHeaders(http2.HeadersFrameParam{StreamID: hf.StreamID, BlockFragment: hb.Bytes(), EndHeaders: true})
				fr.WriteData(hf.StreamID, true, []byte("too large"))
				time.Sleep(100 * time.Millisecond)
				fr.WriteGoAway(hf.StreamID, http2.ErrCodeNo, nil)
				return // close
			}
		}
	}()
	cc := dialClient(t, ln.Addr().String(), h2.ClientConfig{})
	pr, pw := io.Pipe()
	defer pw.Close()
	req, _ := http.NewRequest("POST", "http://"+ln.Addr().String()+"/", pr)
	res, err := cc.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond) // the server closed the connection by now
	b, err := io.ReadAll(res.Body)
	t.Logf("status=%d body=%q err=%v", res.StatusCode, b, err)
	if err != nil || !strings.Contains(string(b), "too large") {
		t.Errorf("complete response body lost: %q, %v", b, err)
	}
}

// A response header list over the client's MaxHeaderListSize fails the
// request, as x/net's transport does, instead of arriving with fields
// silently missing.
func TestTruncatedResponseHeadersFail(t *testing.T) {
	ts := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for i := 0; i < 40; i++ {
			w.Header().Set("X-Big-"+strings.Repeat("b", i), strings.Repeat("a", 200))
		}
		w.Header().Set("X-Z-Important", "1")
		w.Header().Set("Trailer", "Grpc-Status")
		w.Write([]byte("x"))
		w.Header().Set("Grpc-Status", "0")
	}), nil)
	cc := dialClient(t, ts.addr, h2.ClientConfig{MaxHeaderListSize: 4 << 10})
	req, _ := http.NewRequest("GET", ts.url("/"), nil)
	res, err := cc.RoundTrip(req)
	if err != nil {
		t.Logf("RoundTrip error (expected): %v", err)
		return
	}
	io.ReadAll(res.Body)
	res.Body.Close()
	t.Errorf("response delivered despite header list over the limit: %d fields, X-Big len %d, X-Z-Important %q, trailer %v", len(res.Header), len(res.Header), res.Header.Get("X-Z-Important"), res.Trailer)
}
