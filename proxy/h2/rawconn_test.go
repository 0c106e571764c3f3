package h2_test

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// rawConn is a hand-driven HTTP/2 client: a Framer on a loopback TCP conn,
// writing whatever the test says, legal or not.
type rawConn struct {
	t    testing.TB
	c    net.Conn
	fr   *http2.Framer
	hbuf bytes.Buffer
	enc  *hpack.Encoder
}

// dialRaw connects, sends the preface and an empty SETTINGS, and
// acknowledges the server's SETTINGS.
func dialRaw(t testing.TB, addr string) *rawConn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	rc := &rawConn{t: t, c: c}
	rc.fr = http2.NewFramer(c, c)
	rc.fr.AllowIllegalWrites = true
	rc.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	rc.fr.MaxHeaderListSize = 1 << 20
	rc.enc = hpack.NewEncoder(&rc.hbuf)
	if _, err := io.WriteString(c, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	if err := rc.fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	for {
		f := rc.read()
		if f == nil {
			t.Fatal("connection ended before the server's SETTINGS")
		}
		if sf, ok := f.(*http2.SettingsFrame); ok && !sf.IsAck() {
			if err := rc.fr.WriteSettingsAck(); err != nil {
				t.Fatal(err)
			}
			return rc
		}
	}
}

// read returns the next frame, or nil when the connection ended; it fails
// the test on a timeout.
func (rc *rawConn) read() http2.Frame {
	rc.t.Helper()
	rc.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	f, err := rc.fr.ReadFrame()
	if errors.Is(err, os.ErrDeadlineExceeded) {
		rc.t.Fatalf("no frame from the server within 5s")
	}
	if err != nil {
		return nil
	}
	return f
}

// block hpack-encodes name/value pairs.
func (rc *rawConn) block(kv ...string) []byte {
	rc.hbuf.Reset()
	for i := 0; i+1 < len(kv); i += 2 {
		rc.enc.WriteField(hpack.HeaderField{Name: kv[i], Value: kv[i+1]})
	}
	return bytes.Clone(rc.hbuf.Bytes())
}

func (rc *rawConn) headers(id uint32, endStream bool, kv ...string) {
	rc.t.Helper()
	err := rc.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: rc.block(kv...), EndStream: endStream, EndHeaders: true})
	if err != nil {
		rc.t.Fatal(err)
	}
}

var getReq = []string{":method", "GET", ":scheme", "http", ":path", "/ok", ":authority", "raw.test"}

func reqWith(base []string, kv ...string) []string {
	return append(append([]string(nil), base...), kv...)
}

// get sends a complete, valid GET /ok.
func (rc *rawConn) get(id uint32) { rc.headers(id, true, getReq...) }

// response reads until stream id's response ends and returns its :status
// and body. It fails the test on RST_STREAM, GOAWAY or the conn ending.
func (rc *rawConn) response(id uint32) (status string, body string) {
	rc.t.Helper()
	status, body, code := rc.outcome(id)
	if status == "" {
		rc.t.Fatalf("stream %d: RST_STREAM %v, want a response", id, code)
	}
	return status, body
}

// outcome reads until stream id ends: a response (status, body) or a reset
// (code). It fails the test on GOAWAY or the conn ending.
func (rc *rawConn) outcome(id uint32) (status, body string, code http2.ErrCode) {
	rc.t.Helper()
	var b bytes.Buffer
	for {
		switch f := rc.read().(type) {
		case nil:
			rc.t.Fatalf("stream %d: connection ended", id)
		case *http2.GoAwayFrame:
			rc.t.Fatalf("stream %d: GOAWAY %v", id, f.ErrCode)
		case *http2.RSTStreamFrame:
			if f.StreamID == id {
				return status, b.String(), f.ErrCode
			}
		case *http2.MetaHeadersFrame:
			if f.StreamID == id {
				if s := f.PseudoValue("status"); s != "" {
					status = s
				}
				if f.StreamEnded() {
					return status, b.String(), 0
				}
			}
		case *http2.DataFrame:
			if f.StreamID == id {
				b.Write(f.Data())
				if f.StreamEnded() {
					return status, b.String(), 0
				}
			}
		}
	}
}

// wantOK sends a valid GET on id and wants 200 "ok": the connection still
// serves after a stream error.
func (rc *rawConn) wantOK(id uint32) {
	rc.t.Helper()
	rc.get(id)
	if status, body := rc.response(id); status != "200" || body != "ok" {
		rc.t.Errorf("stream %d after the error: %s %q, want 200 \"ok\"", id, status, body)
	}
}

// wantRST reads until stream id is reset and returns the code; a response
// or GOAWAY first fails the test.
func (rc *rawConn) wantRST(id uint32) http2.ErrCode {
	rc.t.Helper()
	for {
		switch f := rc.read().(type) {
		case nil:
			rc.t.Fatalf("stream %d: connection ended, want RST_STREAM", id)
		case *http2.GoAwayFrame:
			rc.t.Fatalf("stream %d: GOAWAY %v (%q), want RST_STREAM", id, f.ErrCode, f.DebugData())
		case *http2.RSTStreamFrame:
			if f.StreamID == id {
				return f.ErrCode
			}
		case *http2.MetaHeadersFrame:
			if f.StreamID == id {
				rc.t.Fatalf("stream %d: response %s, want RST_STREAM", id, f.PseudoValue("status"))
			}
		case *http2.DataFrame:
			if f.StreamID == id {
				rc.t.Fatalf("stream %d: DATA, want RST_STREAM", id)
			}
		}
	}
}

// wantGoAway reads until GOAWAY and returns it, then wants the server to
// close the connection.
func (rc *rawConn) wantGoAway() (http2.ErrCode, uint32) {
	rc.t.Helper()
	for {
		switch f := rc.read().(type) {
		case nil:
			rc.t.Fatalf("connection ended without GOAWAY")
		case *http2.GoAwayFrame:
			code, last := f.ErrCode, f.LastStreamID
			rc.wantClosed()
			return code, last
		}
	}
}

// wantClosed reads (discarding) until the server closes the connection.
func (rc *rawConn) wantClosed() {
	rc.t.Helper()
	rc.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.Copy(io.Discard, rc.c); errors.Is(err, os.ErrDeadlineExceeded) {
		rc.t.Errorf("connection not closed by the server within 5s of its GOAWAY")
	}
}
