package h2_test

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/meshlet/meshlet/proxy/h2"
)

// frames builds a byte string of frames for seeds.
type frames struct {
	buf bytes.Buffer
	fr  *http2.Framer
	enc *hpack.Encoder
	hb  bytes.Buffer
}

func newFrames() *frames {
	f := &frames{}
	f.fr = http2.NewFramer(&f.buf, nil)
	f.fr.AllowIllegalWrites = true
	f.enc = hpack.NewEncoder(&f.hb)
	return f
}

func (f *frames) block(kv ...string) []byte {
	f.hb.Reset()
	for i := 0; i+1 < len(kv); i += 2 {
		f.enc.WriteField(hpack.HeaderField{Name: kv[i], Value: kv[i+1]})
	}
	return bytes.Clone(f.hb.Bytes())
}

func (f *frames) headers(id uint32, end bool, kv ...string) *frames {
	f.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: f.block(kv...), EndStream: end, EndHeaders: true})
	return f
}

func (f *frames) bytes() []byte { return bytes.Clone(f.buf.Bytes()) }

// FuzzServerFrames writes the fuzzer's bytes to a server connection after
// a valid preface and SETTINGS. The server must not panic, and once the
// client side closes, ServeConn must return promptly.
func FuzzServerFrames(f *testing.F) {
	post := []string{":method", "POST", ":scheme", "http", ":path", "/p", ":authority", "a"}
	f.Add(newFrames().headers(1, true, getReq...).bytes())
	{
		s := newFrames().headers(1, false, reqWith(post, "content-length", "3")...)
		s.fr.WriteData(1, false, []byte("abc"))
		s.headers(1, true, "x-trailer", "t")
		s.headers(3, true, getReq...)
		f.Add(s.bytes())
	}
	{
		s := newFrames()
		s.fr.WriteSettingsAck()
		s.fr.WritePing(false, [8]byte{1})
		s.fr.WriteWindowUpdate(0, 1000)
		s.headers(1, false, post...)
		s.fr.WriteWindowUpdate(1, 1000)
		s.fr.WriteRSTStream(1, http2.ErrCodeCancel)
		s.fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1})
		s.headers(3, true, getReq...)
		s.fr.WriteGoAway(0, http2.ErrCodeNo, nil)
		f.Add(s.bytes())
	}
	{
		s := newFrames()
		b := s.block(getReq...)
		s.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: b[:3], EndStream: true})
		s.fr.WriteContinuation(1, true, b[3:])
		s.fr.WriteDataPadded(3, true, []byte("x"), make([]byte, 10))
		f.Add(s.bytes())
	}
	f.Add([]byte{0, 0, 0, 1, 5, 0, 0, 0, 1})
	f.Add(bytes.Repeat([]byte{0xff}, 64))

	srv := &h2.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, io.LimitReader(r.Body, 1<<20))
		w.Header().Set("Trailer", "X-T")
		io.WriteString(w, "ok")
		w.(http.Flusher).Flush()
		w.Header().Set("X-T", "t")
	})}
	var settings bytes.Buffer
	http2.NewFramer(&settings, nil).WriteSettings()
	prefix := append([]byte(http2.ClientPreface), settings.Bytes()...)

	f.Fuzz(func(t *testing.T, data []byte) {
		client, server := net.Pipe()
		done := make(chan struct{})
		go func() {
			defer close(done)
			srv.ServeConn(context.Background(), server)
		}()
		drained := make(chan struct{})
		go func() {
			defer close(drained)
			io.Copy(io.Discard, client)
		}()
		client.SetWriteDeadline(time.Now().Add(2 * time.Second))
		if _, err := client.Write(prefix); err == nil {
			client.Write(data)
		}
		client.Close()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatalf("ServeConn did not return within 5s of the client closing")
		}
		<-drained
	})
}

// FuzzClientFrames feeds a server's SETTINGS then the fuzzer's bytes to a
// client with one request in flight. The client must not panic, and once
// the server side closes, RoundTrip and the body read must return promptly.
func FuzzClientFrames(f *testing.F) {
	resp := []string{":status", "200", "content-type", "text/plain"}
	f.Add(newFrames().headers(1, true, resp...).bytes())
	{
		s := newFrames().headers(1, false, resp...)
		s.fr.WriteData(1, false, []byte("hello"))
		s.fr.WriteWindowUpdate(0, 100)
		s.headers(1, true, "grpc-status", "0")
		f.Add(s.bytes())
	}
	{
		s := newFrames()
		s.fr.WriteSettingsAck()
		s.fr.WritePing(false, [8]byte{2})
		s.headers(1, false, ":status", "100")
		s.headers(1, false, resp...)
		s.fr.WriteRSTStream(1, http2.ErrCodeInternal)
		f.Add(s.bytes())
	}
	{
		s := newFrames()
		s.fr.WriteGoAway(0, http2.ErrCodeNo, []byte("bye"))
		f.Add(s.bytes())
	}
	{
		s := newFrames()
		s.fr.WritePushPromise(http2.PushPromiseParam{StreamID: 1, PromiseID: 2, BlockFragment: s.block(getReq...), EndHeaders: true})
		s.fr.WriteSettings(http2.Setting{ID: http2.SettingMaxFrameSize, Val: 1 << 14})
		f.Add(s.bytes())
	}
	f.Add(bytes.Repeat([]byte{0}, 30))
	// Found by the fuzzer: a response, then HEADERS on a stream never opened.
	f.Add([]byte("\x00\x00\n\x01\x04\x00\x00\x00\x01\x88_\x87I|\xa5\x8a\xe8\x19\xaa\x00\x00\x05\x00\x00\x00\x00\x00\x01hello" +
		"\x00\x00\x04\b\x00\x00\x00\x00\x00\x00\x00\xfad\x00\x00\f\x01\x05\x00\x00@\x88\x9a\xca\xc8\xb2\x124\xda\x8f\x010"))

	var settings bytes.Buffer
	http2.NewFramer(&settings, nil).WriteSettings()

	f.Fuzz(func(t *testing.T, data []byte) {
		client, server := net.Pipe()
		drained := make(chan struct{})
		go func() {
			defer close(drained)
			io.Copy(io.Discard, server)
		}()
		cc, err := h2.NewClientConn(client, h2.ClientConfig{})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		result := make(chan struct{})
		go func() {
			defer close(result)
			req, _ := http.NewRequestWithContext(ctx, "GET", "http://fuzz.test/", nil)
			resp, err := cc.RoundTrip(req)
			switch {
			case err != nil:
				return
			case resp == nil:
				t.Errorf("RoundTrip returned a nil response and a nil error")
				return
			case resp.Body == nil:
				t.Errorf("RoundTrip returned a nil Body (status %d)", resp.StatusCode)
				return
			default:
				io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
				resp.Body.Close()
			}
		}()
		server.SetWriteDeadline(time.Now().Add(2 * time.Second))
		if _, err := server.Write(settings.Bytes()); err == nil {
			server.Write(data)
		}
		server.Close()
		select {
		case <-result:
		case <-time.After(5 * time.Second):
			t.Fatalf("RoundTrip or its body read did not end within 5s of the server closing")
		}
		cc.Close()
		<-drained
	})
}
