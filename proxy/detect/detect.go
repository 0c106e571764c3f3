package detect

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"time"
)

// Result says what Detect found.
type Result struct {
	// Protocol is the detected protocol; Opaque when undecided.
	Protocol Protocol
	// TimedOut is true when the timeout passed before a decision. With
	// zero bytes read it usually means a server-speaks-first protocol.
	TimedOut bool
	// Bytes is how many bytes were peeked (and will be replayed).
	Bytes int
	// HelloParsed is true when Protocol is TLS and the whole first record
	// was read and parsed as a ClientHello; then ServerName is its SNI
	// host name ("" when it sent none).
	HelloParsed bool
	ServerName  string
}

// ErrClosed is returned when the client closed the connection before
// sending anything.
var ErrClosed = errors.New("detect: connection closed before any data")

// Detect reads the first bytes of c until they are recognised, the buffer
// (BufferSize) is full, the peer stops sending (EOF) or timeout passes, and
// returns a Conn replaying them. Undecided input is Opaque, so a client that
// waits for the server to speak first is forwarded after timeout rather
// than stalled forever.
//
// Detect clears c's read deadline before returning. An error (other than
// the timeout, which is a Result) means the connection is unusable; the
// caller closes it.
func Detect(c *net.TCPConn, timeout time.Duration) (*Conn, Result, error) {
	if err := c.SetReadDeadline(time.Now().Add(timeout)); err != nil {
		return nil, Result{}, fmt.Errorf("detect: set deadline: %w", err)
	}
	buf := bufPool.Get().(*[BufferSize]byte)
	n := 0
	var res Result
	for {
		m, err := c.Read(buf[n:])
		n += m
		p, more := Classify(buf[:n])
		if p == TLS && n < helloEnd(buf[:n]) {
			more = true // read the whole first record, for the SNI
		}
		if !more || n == len(buf) {
			res.Protocol = p
			break
		}
		if err == nil {
			continue
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			res.TimedOut = true
			break
		}
		if errors.Is(err, io.EOF) && n > 0 {
			break // a short opaque message followed by a half-close
		}
		bufPool.Put(buf)
		if errors.Is(err, io.EOF) {
			return nil, Result{}, ErrClosed
		}
		return nil, Result{}, fmt.Errorf("detect: read: %w", err)
	}
	if res.Protocol == Opaque && n > 0 {
		// Stopped early (timeout, EOF) inside a TLS record: still TLS.
		if p, _ := Classify(buf[:n]); p == TLS {
			res.Protocol = TLS
		}
	}
	if res.Protocol == TLS {
		res.ServerName, res.HelloParsed = ServerName(buf[:n])
	}
	if err := c.SetReadDeadline(time.Time{}); err != nil {
		bufPool.Put(buf)
		return nil, Result{}, fmt.Errorf("detect: clear deadline: %w", err)
	}
	res.Bytes = n
	dc := newConn(c)
	if n == 0 {
		bufPool.Put(buf)
	} else {
		dc.buf, dc.head = buf, buf[:n]
	}
	return dc, res, nil
}

// Wrap returns c as a Conn with nothing peeked, for connections that skip
// detection (opaque ports) but go through the same code afterwards.
func Wrap(c *net.TCPConn) *Conn { return newConn(c) }

// helloEnd returns how many bytes the TLS record b starts with spans
// (header included), capped at the buffer size: a larger ClientHello is
// classified without its SNI.
func helloEnd(b []byte) int {
	if len(b) < 5 {
		return 5
	}
	return min(5+(int(b[3])<<8|int(b[4])), BufferSize)
}
