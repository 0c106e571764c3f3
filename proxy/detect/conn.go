package detect

import (
	"io"
	"net"
	"sync"

	"github.com/meshlet/meshlet/proxy/rawio"
)

// Conn is a connection whose first bytes were read for detection. Reads
// return those bytes first, then continue on the socket. Reads and writes
// use raw system calls (package rawio); all other methods are the TCP
// connection's.
//
// Conn is not safe for concurrent Reads (no net.Conn is, usefully), but
// Close, Write and deadlines may be called from other goroutines as usual.
type Conn struct {
	*net.TCPConn
	rw   net.Conn          // the socket's reads and writes: a *rawio.Conn, or TCPConn
	buf  *[BufferSize]byte // pooled; nil once the peeked bytes are consumed
	head []byte            // unread peeked bytes, a window into buf
}

func newConn(c *net.TCPConn) *Conn { return &Conn{TCPConn: c, rw: rawio.Wrap(c)} }

// Read returns the peeked bytes first, then reads from the socket.
func (c *Conn) Read(p []byte) (int, error) {
	if len(c.head) == 0 {
		return c.rw.Read(p)
	}
	n := copy(p, c.head)
	c.head = c.head[n:]
	if len(c.head) == 0 {
		c.release()
	}
	return n, nil
}

// WriteTo copies the peeked bytes, then the socket, to w. Without it
// io.Copy would take the TCP connection's own WriteTo and skip the peeked
// bytes.
func (c *Conn) WriteTo(w io.Writer) (int64, error) {
	var n int64
	if len(c.head) > 0 {
		m, err := w.Write(c.head)
		n += int64(m)
		c.head = c.head[m:]
		if err != nil {
			return n, err
		}
		c.release()
	}
	m, err := io.Copy(w, readerOnly{c.rw})
	return n + m, err
}

// readerOnly hides a reader's WriteTo from io.Copy.
type readerOnly struct{ io.Reader }

// Write writes to the socket.
func (c *Conn) Write(p []byte) (int, error) { return c.rw.Write(p) }

// Peeked returns the bytes read for detection and not yet consumed by Read.
// The slice is valid until the next Read or Detach.
func (c *Conn) Peeked() []byte { return c.head }

// Detach returns the unread peeked bytes and the bare TCP connection, for
// forwarding that wants the *net.TCPConn itself (io.Copy between two bare
// TCP connections uses splice). The caller must send head before anything
// read from tcp, and must not use c afterwards. head is a copy only when it
// is not empty.
func (c *Conn) Detach() (head []byte, tcp *net.TCPConn) {
	if len(c.head) > 0 {
		head = append([]byte(nil), c.head...)
	}
	c.head = nil
	c.release()
	return head, c.TCPConn
}

func (c *Conn) release() {
	if c.buf != nil {
		bufPool.Put(c.buf)
		c.buf = nil
	}
}

// BufferSize bounds how many bytes detection reads before deciding: an
// HTTP/1 request line longer than this is treated as opaque.
const BufferSize = 8 << 10

var bufPool = sync.Pool{New: func() any { return new([BufferSize]byte) }}
