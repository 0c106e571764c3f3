package detect

import (
	"bytes"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/meshlet/meshlet/proxy/rawio"
)

// pair returns the two ends of a real loopback TCP connection.
func pair(tb testing.TB) (client, server *net.TCPConn) {
	tb.Helper()
	ln, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		tb.Fatal(err)
	}
	defer ln.Close()
	c, err := net.DialTCP("tcp", nil, ln.Addr().(*net.TCPAddr))
	if err != nil {
		tb.Fatal(err)
	}
	s, err := ln.AcceptTCP()
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close(); s.Close() })
	return c, s
}

func TestDetect(t *testing.T) {
	const timeout = 200 * time.Millisecond
	for _, tc := range []struct {
		name     string
		writes   []string // written with a pause between them
		closeW   bool     // half-close after writing
		want     Protocol
		timedOut bool
	}{
		{"http1 in one write", []string{"GET / HTTP/1.1\r\nHost: a\r\n\r\n"}, false, HTTP1, false},
		{"http1 split", []string{"GE", "T /x HT", "TP/1.1\r", "\nHost: a\r\n\r\n"}, false, HTTP1, false},
		{"h2 preface split", []string{h2Preface[:5], h2Preface[5:]}, false, HTTP2, false},
		{"tls record cut short", []string{"\x16\x03\x01\x00\xc8\x01\x00\x00\xc4"}, false, TLS, true},
		{"opaque binary", []string{"\x00\x01binary"}, false, Opaque, false},
		{"server speaks first", nil, false, Opaque, true},
		{"partial then silence", []string{"GET /"}, false, Opaque, true},
		{"partial then half-close", []string{"GET /"}, true, Opaque, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, s := pair(t)
			sent := ""
			go func() {
				for _, w := range tc.writes {
					c.Write([]byte(w))
					time.Sleep(10 * time.Millisecond)
				}
				if tc.closeW {
					c.CloseWrite()
				}
			}()
			for _, w := range tc.writes {
				sent += w
			}
			start := time.Now()
			dc, res, err := Detect(s, timeout)
			if err != nil {
				t.Fatal(err)
			}
			if res.Protocol != tc.want || res.TimedOut != tc.timedOut {
				t.Fatalf("Detect = %+v, want %v timedOut=%v", res, tc.want, tc.timedOut)
			}
			if el := time.Since(start); !tc.timedOut && el > timeout {
				t.Errorf("decision took %v, longer than the timeout", el)
			}
			// Every byte sent is still readable, in order.
			got := make([]byte, len(sent))
			if _, err := io.ReadFull(dc, got); err != nil {
				t.Fatalf("replay: %v", err)
			}
			if string(got) != sent {
				t.Fatalf("replayed %q, want %q", got, sent)
			}
			// The deadline was cleared: more data after a pause still arrives.
			go func() { time.Sleep(timeout + 50*time.Millisecond); c.Write([]byte("z")) }()
			if tc.closeW {
				if n, err := dc.Read(make([]byte, 1)); n != 0 || !errors.Is(err, io.EOF) {
					t.Fatalf("after half-close: %d, %v; want EOF", n, err)
				}
				return
			}
			one := make([]byte, 1)
			if _, err := io.ReadFull(dc, one); err != nil || one[0] != 'z' {
				t.Fatalf("read after detection: %q, %v", one, err)
			}
		})
	}
}

func TestDetectClosedBeforeData(t *testing.T) {
	c, s := pair(t)
	c.Close()
	if _, _, err := Detect(s, time.Second); !errors.Is(err, ErrClosed) {
		t.Fatalf("Detect on a closed connection: %v, want ErrClosed", err)
	}
}

func TestDetectFullBufferIsOpaque(t *testing.T) {
	c, s := pair(t)
	// A request line longer than the buffer: never decided, so opaque once full.
	line := "GET /" + string(bytes.Repeat([]byte("a"), BufferSize))
	go c.Write([]byte(line))
	dc, res, err := Detect(s, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if res.Protocol != Opaque || res.TimedOut || res.Bytes != BufferSize {
		t.Fatalf("Detect = %+v, want opaque with a full buffer", res)
	}
	got := make([]byte, len(line))
	if _, err := io.ReadFull(dc, got); err != nil || string(got) != line {
		t.Fatalf("replay of %d bytes: %v", len(line), err)
	}
}

func TestDetach(t *testing.T) {
	c, s := pair(t)
	c.Write([]byte("\x00opaque"))
	dc, res, err := Detect(s, time.Second)
	if err != nil || res.Protocol != Opaque {
		t.Fatalf("Detect = %+v, %v", res, err)
	}
	// Consume part through the Conn, then detach the rest.
	one := make([]byte, 1)
	if _, err := dc.Read(one); err != nil {
		t.Fatal(err)
	}
	head, tcp := dc.Detach()
	if string(head) != "opaque" || tcp != s {
		t.Fatalf("Detach = %q, %p; want \"opaque\" and the socket %p", head, tcp, s)
	}
	if head2, _ := dc.Detach(); head2 != nil {
		t.Fatalf("second Detach returned %q", head2)
	}
}

// BenchmarkDetect measures detection of an HTTP/1 request on a real
// loopback connection: deadline set and cleared, one read, classification.
func BenchmarkDetect(b *testing.B) {
	c, s := pair(b)
	req := []byte("GET /api/v1/users HTTP/1.1\r\nHost: users:8080\r\n\r\n")
	sink := make([]byte, len(req))
	b.ReportAllocs()
	b.SetBytes(int64(len(req)))
	for b.Loop() {
		if _, err := c.Write(req); err != nil {
			b.Fatal(err)
		}
		dc, res, err := Detect(s, time.Second)
		if err != nil || res.Protocol != HTTP1 {
			b.Fatal(res, err)
		}
		if _, err := io.ReadFull(dc, sink); err != nil {
			b.Fatal(err)
		}
	}
}

// io.Copy from a Conn gives the peeked bytes first, then the rest of the
// stream (the TCP connection's own WriteTo would skip them).
func TestWriteToKeepsPeeked(t *testing.T) {
	c, s := pair(t)
	c.Write([]byte("GET / HTTP/1.1\r\n"))
	dc, res, err := Detect(s, time.Second)
	if err != nil || res.Protocol != HTTP1 {
		t.Fatalf("Detect = %+v, %v", res, err)
	}
	c.Write([]byte("tail"))
	c.CloseWrite()
	var got bytes.Buffer
	if _, err := io.Copy(&got, dc); err != nil {
		t.Fatal(err)
	}
	if got.String() != "GET / HTTP/1.1\r\ntail" {
		t.Errorf("io.Copy gave %q", got.String())
	}
}

// A Conn reads and writes its socket through package rawio.
func TestConnUsesRawIO(t *testing.T) {
	_, s := pair(t)
	if _, ok := Wrap(s).rw.(*rawio.Conn); !ok {
		t.Errorf("Conn's socket I/O is a %T, not a *rawio.Conn", Wrap(s).rw)
	}
}
