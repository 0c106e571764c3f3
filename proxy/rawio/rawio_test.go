//go:build unix

package rawio

import (
	"bytes"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/meshlet/meshlet/proxy/meshtls"
	"github.com/meshlet/meshlet/proxy/meshtls/meshtlstest"
)

// pair returns a connected loopback pair: ours (raw) and the peer (a plain
// *net.TCPConn).
func pair(t testing.TB) (*Conn, *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	peer := <-accepted
	if peer == nil {
		t.Fatal("accept failed")
	}
	rc, err := New(c.(*net.TCPConn))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rc.Close(); peer.Close() })
	return rc, peer.(*net.TCPConn)
}

// Bytes cross both ways intact, including writes far larger than the
// socket buffers (the writer waits in the netpoller for the slow reader).
func TestRoundTrip(t *testing.T) {
	c, peer := pair(t)
	data := make([]byte, 8<<20)
	rand.Read(data)
	got := make(chan []byte, 1)
	go func() {
		var buf bytes.Buffer
		_, err := io.CopyN(&buf, peer, int64(len(data)))
		if err != nil {
			t.Error(err)
		}
		got <- buf.Bytes()
	}()
	if n, err := c.Write(data); n != len(data) || err != nil {
		t.Fatalf("Write = %d, %v", n, err)
	}
	if !bytes.Equal(<-got, data) {
		t.Fatal("the peer read other bytes than were written")
	}
	go peer.Write(data)
	back := make([]byte, len(data))
	if _, err := io.ReadFull(c, back); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(back, data) {
		t.Fatal("read other bytes than the peer wrote")
	}
	if n, err := c.Read(nil); n != 0 || err != nil {
		t.Errorf("empty Read = %d, %v", n, err)
	}
}

func TestEOFAndReset(t *testing.T) {
	c, peer := pair(t)
	peer.Write([]byte("bye"))
	peer.CloseWrite()
	b, err := io.ReadAll(c)
	if string(b) != "bye" || err != nil {
		t.Fatalf("ReadAll = %q, %v; want the bytes then EOF", b, err)
	}
	if n, err := c.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		t.Errorf("Read after EOF = %d, %v; want io.EOF", n, err)
	}

	c, peer = pair(t)
	peer.SetLinger(0)
	peer.Close() // RST
	time.Sleep(50 * time.Millisecond)
	_, err = c.Read(make([]byte, 10))
	var oe *net.OpError
	if !errors.Is(err, syscall.ECONNRESET) || !errors.As(err, &oe) || oe.Op != "read" {
		t.Errorf("Read after reset: %v; want an OpError \"read\" wrapping ECONNRESET", err)
	}
	var werr error
	for i := 0; i < 3 && werr == nil; i++ { // the first write after a reset may still succeed
		_, werr = c.Write([]byte("x"))
	}
	if !errors.Is(werr, syscall.EPIPE) && !errors.Is(werr, syscall.ECONNRESET) {
		t.Errorf("Write after reset: %v; want EPIPE or ECONNRESET", werr)
	}
}

func TestDeadlines(t *testing.T) {
	c, peer := pair(t)
	c.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	_, err := c.Read(make([]byte, 10))
	var ne net.Error
	if !errors.Is(err, os.ErrDeadlineExceeded) || !errors.As(err, &ne) || !ne.Timeout() {
		t.Errorf("Read past its deadline: %v; want a timeout", err)
	}
	c.SetReadDeadline(time.Time{})
	peer.Write([]byte("late"))
	b := make([]byte, 4)
	if _, err := io.ReadFull(c, b); err != nil || string(b) != "late" {
		t.Errorf("Read after clearing the deadline = %q, %v", b, err)
	}

	// The peer never reads: the write fills both buffers, then times out,
	// having written part of the data.
	c.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
	n, err := c.Write(make([]byte, 64<<20))
	if !errors.Is(err, os.ErrDeadlineExceeded) || n == 0 || n >= 64<<20 {
		t.Errorf("Write past its deadline = %d, %v; want some bytes and a timeout", n, err)
	}
}

// Close from another goroutine ends a Read waiting in the netpoller.
func TestCloseWakesRead(t *testing.T) {
	c, _ := pair(t)
	done := make(chan error, 1)
	go func() {
		_, err := c.Read(make([]byte, 10))
		done <- err
	}()
	time.Sleep(20 * time.Millisecond)
	c.Close()
	select {
	case err := <-done:
		if !errors.Is(err, net.ErrClosed) {
			t.Errorf("Read on a closed conn: %v; want net.ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Read still blocked after Close")
	}
}

// Reads and writes from several goroutines at once (run with -race). Each
// Write is whole: the echoed stream is a sequence of the writers' records.
func TestConcurrent(t *testing.T) {
	c, peer := pair(t)
	go io.Copy(peer, peer) // echo
	const writers, each = 4, 1000
	done := make(chan bool)
	for w := range writers {
		rec := []byte(fmt.Sprintf("%c123456789", 'A'+w))
		go func() {
			for range each {
				if _, err := c.Write(rec); err != nil {
					t.Error(err)
					break
				}
			}
			done <- true
		}()
	}
	got := make([]byte, writers*each*10)
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatal(err)
	}
	counts := map[byte]int{}
	for i := 0; i < len(got); i += 10 {
		rec := got[i : i+10]
		if string(rec[1:]) != "123456789" || rec[0] < 'A' || rec[0] >= 'A'+writers {
			t.Fatalf("record %d is %q: writes were split or mixed", i/10, rec)
		}
		counts[rec[0]]++
	}
	for w := range writers {
		if counts[byte('A'+w)] != each {
			t.Errorf("writer %c: %d records, want %d", 'A'+w, counts[byte('A'+w)], each)
		}
	}
	for range writers {
		<-done
	}
}

// Close, or a deadline moved into the past, ends a Read or Write waiting in
// the netpoller (the HTTP/1 server ends a connection's read that way).
func TestInterruptWaiting(t *testing.T) {
	for _, c := range []struct {
		name      string
		write     bool
		interrupt func(c *Conn)
		want      error
	}{
		{"close read", false, func(c *Conn) { c.Close() }, net.ErrClosed},
		{"close write", true, func(c *Conn) { c.Close() }, net.ErrClosed},
		{"deadline read", false, func(c *Conn) { c.SetReadDeadline(time.Unix(1, 0)) }, os.ErrDeadlineExceeded},
		{"deadline write", true, func(c *Conn) { c.SetWriteDeadline(time.Unix(1, 0)) }, os.ErrDeadlineExceeded},
	} {
		t.Run(c.name, func(t *testing.T) {
			conn, _ := pair(t) // the peer neither writes nor reads
			done := make(chan error, 1)
			go func() {
				var err error
				if c.write {
					_, err = conn.Write(make([]byte, 64<<20))
				} else {
					_, err = conn.Read(make([]byte, 10))
				}
				done <- err
			}()
			time.Sleep(50 * time.Millisecond)
			c.interrupt(conn)
			select {
			case err := <-done:
				if !errors.Is(err, c.want) {
					t.Errorf("got %v, want %v", err, c.want)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("still waiting")
			}
		})
	}
}

// Empty reads and writes report a closed connection, and an empty write a
// past deadline, as net.Conn's do.
func TestEmptyCalls(t *testing.T) {
	c, _ := pair(t)
	c.SetWriteDeadline(time.Unix(1, 0))
	if _, err := c.Write(nil); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("empty Write past its deadline: %v", err)
	}
	c.Close()
	if _, err := c.Read(nil); !errors.Is(err, net.ErrClosed) {
		t.Errorf("empty Read on a closed conn: %v", err)
	}
	if _, err := c.Write(nil); !errors.Is(err, net.ErrClosed) {
		t.Errorf("empty Write on a closed conn: %v", err)
	}
}

// A socket made blocking (os.File.Fd does it) is not wrapped: a raw call on
// it could block where the runtime cannot see.
func TestBlockingSocketNotWrapped(t *testing.T) {
	c, _ := pair(t)
	f, err := c.TCPConn.File()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	f.Fd() // sets blocking mode on the shared open file
	if _, err := New(c.TCPConn); !errors.Is(err, errBlocking) {
		t.Errorf("New on a blocking socket: %v, want errBlocking", err)
	}
	if _, ok := Wrap(c.TCPConn).(*Conn); ok {
		t.Error("Wrap wrapped a blocking socket")
	}
}

// TLS runs over a wrapped connection as over a plain one.
func TestTLS(t *testing.T) {
	c, peer := pair(t)
	ca := meshtlstest.NewCA(t, "example.org")
	id := spiffeid.RequireFromString("spiffe://example.org/ns/default/sa/web")
	src := ca.Source(t, id.String())
	srv := tls.Server(peer, meshtls.ServerConfig(src, "h2"))
	go func() {
		io.Copy(srv, srv) // echo
		srv.Close()
	}()
	cl := tls.Client(c, meshtls.ClientConfig(ca.Source(t, "spiffe://example.org/ns/default/sa/client"), id, "h2"))
	msg := bytes.Repeat([]byte("meshlet "), 10000)
	go cl.Write(msg)
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(cl, got); err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("echo over TLS: %v", err)
	}
	if p := cl.ConnectionState().NegotiatedProtocol; p != "h2" {
		t.Errorf("ALPN %q", p)
	}
}

func TestWrap(t *testing.T) {
	c, _ := pair(t)
	if _, ok := Wrap(c.TCPConn).(*Conn); !ok {
		t.Error("Wrap of a *net.TCPConn is not a *Conn")
	}
	p1, p2 := net.Pipe()
	defer p1.Close()
	defer p2.Close()
	if Wrap(p1) != p1 {
		t.Error("Wrap changed a connection that is not TCP")
	}
}

func BenchmarkPingPong(b *testing.B) {
	for _, raw := range []bool{false, true} {
		name := "net"
		if raw {
			name = "rawio"
		}
		b.Run(name, func(b *testing.B) {
			c, peer := pair(b)
			var conn net.Conn = c.TCPConn
			if raw {
				conn = c
			}
			go io.Copy(peer, peer)
			buf := make([]byte, 64)
			b.ReportAllocs()
			for b.Loop() {
				conn.Write(buf)
				io.ReadFull(conn, buf)
			}
		})
	}
}
