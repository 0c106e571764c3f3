package h2_test

import (
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"

	"github.com/meshlet/meshlet/proxy/h2"
)

// Malformed requests and protocol errors, written with a raw Framer. The
// expected codes are RFC 9113's; each case names its section.

// rawHandler: /ok answers "ok", /body reads the body first, /hold waits
// for the stream to end.
var rawHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/body":
		if _, err := io.ReadAll(r.Body); err != nil {
			return
		}
	case "/hold":
		<-r.Context().Done()
		return
	}
	io.WriteString(w, "ok")
})

func startRawServer(t *testing.T, mutate func(*h2.Server)) *testServer {
	return startServer(t, rawHandler, mutate)
}

func without(kv []string, name string) []string {
	var out []string
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i] != name {
			out = append(out, kv[i], kv[i+1])
		}
	}
	return out
}

var postBody = []string{":method", "POST", ":scheme", "http", ":path", "/body", ":authority", "raw.test"}
var holdReq = []string{":method", "GET", ":scheme", "http", ":path", "/hold", ":authority", "raw.test"}

// Stream errors: stream 1 is reset with the code, and stream 3 then gets a
// normal response on the same connection.
func TestMalformedStreamErrors(t *testing.T) {
	cases := []struct {
		name string
		send func(rc *rawConn)
		want http2.ErrCode
	}{
		// §8.2.1: field names are lowercase; §8.1.1: malformed → PROTOCOL_ERROR.
		{"uppercase name", func(rc *rawConn) { rc.headers(1, true, reqWith(getReq, "X-Upper", "v")...) }, http2.ErrCodeProtocol},
		// §8.2.1: no CR, LF or NUL in a value.
		{"newline in value", func(rc *rawConn) { rc.headers(1, true, reqWith(getReq, "x-a", "b\nc")...) }, http2.ErrCodeProtocol},
		// §8.2.2: connection-specific fields are malformed.
		{"connection header", func(rc *rawConn) { rc.headers(1, true, reqWith(getReq, "connection", "keep-alive")...) }, http2.ErrCodeProtocol},
		{"transfer-encoding", func(rc *rawConn) { rc.headers(1, true, reqWith(getReq, "transfer-encoding", "chunked")...) }, http2.ErrCodeProtocol},
		{"keep-alive header", func(rc *rawConn) { rc.headers(1, true, reqWith(getReq, "keep-alive", "timeout=5")...) }, http2.ErrCodeProtocol},
		// §8.2.2: te may only be "trailers".
		{"te gzip", func(rc *rawConn) { rc.headers(1, true, reqWith(getReq, "te", "gzip")...) }, http2.ErrCodeProtocol},
		// §8.3.1: exactly one valid :method, :scheme and :path.
		{"no :method", func(rc *rawConn) { rc.headers(1, true, without(getReq, ":method")...) }, http2.ErrCodeProtocol},
		{"no :path", func(rc *rawConn) { rc.headers(1, true, without(getReq, ":path")...) }, http2.ErrCodeProtocol},
		{"no :scheme", func(rc *rawConn) { rc.headers(1, true, without(getReq, ":scheme")...) }, http2.ErrCodeProtocol},
		{"empty :path", func(rc *rawConn) {
			rc.headers(1, true, ":method", "GET", ":scheme", "http", ":path", "", ":authority", "raw.test")
		}, http2.ErrCodeProtocol},
		{"two :path", func(rc *rawConn) { rc.headers(1, true, reqWith(getReq, ":path", "/again")...) }, http2.ErrCodeProtocol},
		// §8.3: pseudo-header fields come first; undefined ones are malformed.
		{"pseudo after regular", func(rc *rawConn) {
			rc.headers(1, true, ":method", "GET", ":scheme", "http", "x-a", "b", ":path", "/ok", ":authority", "raw.test")
		}, http2.ErrCodeProtocol},
		{"unknown pseudo", func(rc *rawConn) {
			rc.headers(1, true, reqWith(getReq[:6], ":foo", "bar", ":authority", "raw.test")...)
		}, http2.ErrCodeProtocol},
		{"response pseudo", func(rc *rawConn) { rc.headers(1, true, reqWith(getReq, ":status", "200")...) }, http2.ErrCodeProtocol},
		// §8.1.1: content-length must equal the DATA payload.
		{"content-length above data", func(rc *rawConn) {
			rc.headers(1, false, reqWith(postBody, "content-length", "10")...)
			rc.fr.WriteData(1, true, []byte("abc"))
		}, http2.ErrCodeProtocol},
		{"content-length below data", func(rc *rawConn) {
			rc.headers(1, false, reqWith(postBody, "content-length", "2")...)
			rc.fr.WriteData(1, true, []byte("abc"))
		}, http2.ErrCodeProtocol},
		{"content-length not a number", func(rc *rawConn) {
			rc.headers(1, true, reqWith(getReq, "content-length", "x1")...)
		}, http2.ErrCodeProtocol},
		// §8.1: trailers carry no pseudo-header fields.
		{"pseudo in trailers", func(rc *rawConn) {
			rc.headers(1, false, postBody...)
			rc.fr.WriteData(1, false, []byte("abc"))
			rc.headers(1, true, ":path", "/x")
		}, http2.ErrCodeProtocol},
		// §8.1: a HEADERS frame after the body must end the stream.
		{"trailers without END_STREAM", func(rc *rawConn) {
			rc.headers(1, false, postBody...)
			rc.fr.WriteData(1, false, []byte("abc"))
			rc.headers(1, false, "x-trailer", "v")
		}, http2.ErrCodeProtocol},
		// §5.1, §6.1: DATA on a half-closed (remote) stream → STREAM_CLOSED.
		{"data after END_STREAM", func(rc *rawConn) {
			rc.headers(1, true, holdReq...)
			rc.fr.WriteData(1, true, []byte("late"))
		}, http2.ErrCodeStreamClosed},
		// §6.9.1: a stream window above 2^31-1 → stream FLOW_CONTROL_ERROR.
		{"stream window overflow", func(rc *rawConn) {
			rc.headers(1, true, holdReq...)
			rc.fr.WriteWindowUpdate(1, 1<<31-1)
		}, http2.ErrCodeFlowControl},
		// §6.9: a zero increment on a stream → stream PROTOCOL_ERROR.
		{"stream window update 0", func(rc *rawConn) {
			rc.headers(1, true, holdReq...)
			rc.fr.WriteWindowUpdate(1, 0)
		}, http2.ErrCodeProtocol},
		// §5.3.1: a stream cannot depend on itself.
		{"self dependency", func(rc *rawConn) {
			rc.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: rc.block(getReq...), EndStream: true, EndHeaders: true,
				Priority: http2.PriorityParam{StreamDep: 1, Weight: 15}})
		}, http2.ErrCodeProtocol},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ts := startRawServer(t, nil)
			rc := dialRaw(t, ts.addr)
			tc.send(rc)
			if got := rc.wantRST(1); got != tc.want {
				t.Errorf("RST_STREAM %v, want %v", got, tc.want)
			}
			rc.wantOK(3)
			ts.errs.waitCounted(t)
		})
	}
}

// Connection errors: GOAWAY with the code, then the server closes.
func TestMalformedConnErrors(t *testing.T) {
	settingsFrame := func(rc *rawConn, s ...http2.Setting) { rc.fr.WriteSettings(s...) }
	cases := []struct {
		name   string
		mutate func(*h2.Server)
		send   func(rc *rawConn)
		want   http2.ErrCode
	}{
		// §6.2: HEADERS on stream 0.
		{"headers on stream 0", nil, func(rc *rawConn) { rc.headers(0, true, getReq...) }, http2.ErrCodeProtocol},
		// §5.1.1: client streams are odd.
		{"even stream", nil, func(rc *rawConn) { rc.headers(2, true, getReq...) }, http2.ErrCodeProtocol},
		// §5.1.1: new stream IDs must increase.
		{"stream id going backwards", nil, func(rc *rawConn) {
			rc.get(5)
			rc.response(5)
			rc.get(3)
		}, http2.ErrCodeProtocol},
		// §5.1: only HEADERS or PRIORITY on an idle stream.
		{"data on idle stream", nil, func(rc *rawConn) { rc.fr.WriteData(1, true, []byte("x")) }, http2.ErrCodeProtocol},
		{"rst on idle stream", nil, func(rc *rawConn) { rc.fr.WriteRSTStream(1, http2.ErrCodeCancel) }, http2.ErrCodeProtocol},
		{"window update on idle stream", nil, func(rc *rawConn) { rc.fr.WriteWindowUpdate(7, 100) }, http2.ErrCodeProtocol},
		// §6.9.1: connection window above 2^31-1.
		{"conn window overflow", nil, func(rc *rawConn) { rc.fr.WriteWindowUpdate(0, 1<<31-1) }, http2.ErrCodeFlowControl},
		// §6.9: zero increment on the connection.
		{"conn window update 0", nil, func(rc *rawConn) { rc.fr.WriteWindowUpdate(0, 0) }, http2.ErrCodeProtocol},
		// §6.5.2: setting values out of range.
		{"initial window 2^31", nil, func(rc *rawConn) {
			settingsFrame(rc, http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1 << 31})
		}, http2.ErrCodeFlowControl},
		{"max frame size too small", nil, func(rc *rawConn) {
			settingsFrame(rc, http2.Setting{ID: http2.SettingMaxFrameSize, Val: 1000})
		}, http2.ErrCodeProtocol},
		{"enable push 2", nil, func(rc *rawConn) {
			settingsFrame(rc, http2.Setting{ID: http2.SettingEnablePush, Val: 2})
		}, http2.ErrCodeProtocol},
		// §6.5: SETTINGS on a stream; a length not a multiple of 6.
		{"settings on stream", nil, func(rc *rawConn) { rc.fr.WriteRawFrame(http2.FrameSettings, 0, 1, nil) }, http2.ErrCodeProtocol},
		{"settings length 5", nil, func(rc *rawConn) { rc.fr.WriteRawFrame(http2.FrameSettings, 0, 0, make([]byte, 5)) }, http2.ErrCodeFrameSize},
		// §6.7: PING is 8 bytes on stream 0.
		{"ping length 7", nil, func(rc *rawConn) { rc.fr.WriteRawFrame(http2.FramePing, 0, 0, make([]byte, 7)) }, http2.ErrCodeFrameSize},
		{"ping on stream", nil, func(rc *rawConn) { rc.fr.WriteRawFrame(http2.FramePing, 0, 1, make([]byte, 8)) }, http2.ErrCodeProtocol},
		// §4.2: a field-block frame over SETTINGS_MAX_FRAME_SIZE.
		{"frame too large", func(s *h2.Server) { s.MaxReadFrameSize = 16384 }, func(rc *rawConn) {
			rc.fr.WriteRawFrame(http2.FrameHeaders, http2.FlagHeadersEndHeaders, 1, make([]byte, 16385))
		}, http2.ErrCodeFrameSize},
		// §6.10: CONTINUATION only right after HEADERS without END_HEADERS.
		{"continuation alone", nil, func(rc *rawConn) { rc.fr.WriteContinuation(1, true, rc.block(getReq...)) }, http2.ErrCodeProtocol},
		{"data inside a header block", nil, func(rc *rawConn) {
			rc.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: rc.block(getReq...), EndHeaders: false})
			rc.fr.WriteData(1, true, []byte("x"))
		}, http2.ErrCodeProtocol},
		{"continuation on another stream", nil, func(rc *rawConn) {
			rc.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: rc.block(getReq[:4]...), EndHeaders: false})
			rc.fr.WriteContinuation(3, true, rc.block(getReq[4:]...))
		}, http2.ErrCodeProtocol},
		// §6.2: padding as long as the payload or longer (x/net calls it a
		// stream error, but the block is then never decoded).
		{"headers padded past their end", nil, func(rc *rawConn) {
			rc.fr.WriteRawFrame(http2.FrameHeaders, http2.FlagHeadersEndHeaders|http2.FlagHeadersEndStream|http2.FlagHeadersPadded, 1, []byte{10, 0x82, 0x86, 0x84})
		}, http2.ErrCodeProtocol},
		// §4.3: a field block that does not decode.
		{"bad hpack", nil, func(rc *rawConn) {
			rc.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: []byte{0xff, 0xff, 0xff, 0xff, 0xff}, EndHeaders: true, EndStream: true})
		}, http2.ErrCodeCompression},
		// §8.4: clients cannot push.
		{"push promise", nil, func(rc *rawConn) {
			rc.fr.WritePushPromise(http2.PushPromiseParam{StreamID: 1, PromiseID: 2, BlockFragment: rc.block(getReq...), EndHeaders: true})
		}, http2.ErrCodeProtocol},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ts := startRawServer(t, tc.mutate)
			rc := dialRaw(t, ts.addr)
			tc.send(rc)
			if got, _ := rc.wantGoAway(); got != tc.want {
				t.Errorf("GOAWAY %v, want %v", got, tc.want)
			}
			ts.errs.waitCounted(t)
		})
	}
}

// TestMalformedHeaderListTooLarge: a header list over MaxHeaderBytes gets
// 431 (as documented; §10.5.1), and the connection goes on.
func TestMalformedHeaderListTooLarge(t *testing.T) {
	ts := startRawServer(t, func(s *h2.Server) { s.MaxHeaderBytes = 1024 })
	rc := dialRaw(t, ts.addr)
	var kv []string
	for i := range 40 { // 40 fields of ~40 bytes (+32 each): over 1024
		kv = append(kv, "x-f"+strconv.Itoa(i), strings.Repeat("v", 40))
	}
	rc.headers(1, true, reqWith(getReq, kv...)...)
	if status, _ := rc.response(1); status != "431" {
		t.Errorf("status %q, want 431", status)
	}
	rc.wantOK(3)
}

// TestMalformedHeaderFieldTooLarge: one field alone over MaxHeaderBytes
// gets 431 too, and the connection goes on (§10.5.1).
func TestMalformedHeaderFieldTooLarge(t *testing.T) {
	ts := startRawServer(t, func(s *h2.Server) { s.MaxHeaderBytes = 1024 })
	rc := dialRaw(t, ts.addr)
	rc.headers(1, true, reqWith(getReq, "x-big", strings.Repeat("v", 1500))...)
	if status, _ := rc.response(1); status != "431" {
		t.Errorf("status %q, want 431", status)
	}
	rc.wantOK(3)
}

// TestMalformedTooManyStreams: streams beyond MaxConcurrentStreams are
// refused (§5.1.2), the others keep going.
func TestMalformedTooManyStreams(t *testing.T) {
	ts := startRawServer(t, func(s *h2.Server) { s.MaxConcurrentStreams = 2 })
	rc := dialRaw(t, ts.addr)
	rc.headers(1, true, holdReq...)
	rc.headers(3, true, holdReq...)
	rc.headers(5, true, holdReq...)
	if got := rc.wantRST(5); got != http2.ErrCodeRefusedStream {
		t.Errorf("third stream: RST_STREAM %v, want REFUSED_STREAM", got)
	}
	// Freeing a slot lets a new stream in; the freed slot may only count
	// once the reset stream's handler returned, so a few refusals are fine.
	rc.fr.WriteRSTStream(1, http2.ErrCodeCancel)
	for id := uint32(7); ; id += 2 {
		rc.get(id)
		if st, body, code := rc.outcome(id); st == "200" && body == "ok" {
			break
		} else if code != http2.ErrCodeRefusedStream || id > 7+2*20 {
			t.Fatalf("stream %d after freeing a slot: status %q body %q reset %v", id, st, body, code)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestMalformedFlowControlViolation: DATA beyond the advertised stream
// window is a FLOW_CONTROL_ERROR (§6.9.1), on the stream or connection.
func TestMalformedFlowControlViolation(t *testing.T) {
	ts := startRawServer(t, func(s *h2.Server) { s.StreamWindow = 16384 })
	rc := dialRaw(t, ts.addr)
	rc.headers(1, false, holdReq...)
	chunk := make([]byte, 16384)
	for range 3 {
		rc.fr.WriteData(1, false, chunk)
	}
	for {
		switch f := rc.read().(type) {
		case nil:
			t.Fatalf("connection ended without RST_STREAM or GOAWAY")
		case *http2.RSTStreamFrame:
			if f.ErrCode != http2.ErrCodeFlowControl {
				t.Errorf("RST_STREAM %v, want FLOW_CONTROL_ERROR", f.ErrCode)
			}
			ts.errs.waitCounted(t)
			return
		case *http2.GoAwayFrame:
			if f.ErrCode != http2.ErrCodeFlowControl {
				t.Errorf("GOAWAY %v, want FLOW_CONTROL_ERROR", f.ErrCode)
			}
			ts.errs.waitCounted(t)
			return
		}
	}
}
