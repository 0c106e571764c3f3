// Package tcp forwards opaque TCP streams: a bidirectional copy that
// propagates half-close, uses splice(2) when both sides are bare TCP
// sockets, and pooled buffers when one side is TLS.
package tcp

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"

	"github.com/meshlet/meshlet/proxy/rawio"
)

// Stats counts what one forwarded connection carried.
type Stats struct {
	// FromClient is the number of bytes read from the client and written
	// to the server, including bytes peeked during detection.
	FromClient int64
	// ToClient is the number of bytes read from the server and written to
	// the client.
	ToClient int64
}

// detacher is implemented by connections that peeked bytes for protocol
// detection (detect.Conn): Detach hands back those bytes and the bare
// socket, so the copy can splice.
type detacher interface {
	Detach() ([]byte, *net.TCPConn)
}

// closeWriter is implemented by *net.TCPConn (shutdown(SHUT_WR)) and
// *tls.Conn (close_notify, which TLS 1.3 treats as a half-close).
type closeWriter interface {
	CloseWrite() error
}

// Forward copies client→server and server→client until both directions
// have ended, then closes both connections; it owns them from the call on.
// When one side finishes sending (EOF), the other side's write half is
// closed and the opposite direction goes on, so request/response protocols
// that half-close work. An error in either direction aborts both (with a
// reset, so the peer sees the failure rather than a clean end). When ctx
// ends, both connections are closed at once: ctx is the hard stop at the
// end of a shutdown grace period, not a per-connection timeout.
//
// A client that is a detect.Conn has its peeked bytes sent first. Between
// two bare *net.TCPConn the copy is io.Copy, which Linux turns into
// splice(2): no byte passes through user space. The byte counts come from
// the copies' return values, so nothing wraps the sockets. When one side is
// not a bare socket (TLS), a bare other side is wrapped for raw reads and
// writes (package rawio).
func Forward(ctx context.Context, client, server net.Conn) (Stats, error) {
	var st Stats
	var head []byte
	if d, ok := client.(detacher); ok {
		head, client = d.Detach()
	}
	if !bare(client) || !bare(server) {
		// No splice through TLS: the bytes pass through user space, so the
		// plain side's reads and writes are raw system calls, as the HTTP
		// layer's (the TLS side's socket is wrapped where it is dialed or
		// accepted).
		client, server = rawio.Wrap(client), rawio.Wrap(server)
	}
	stop := context.AfterFunc(ctx, func() { abort(client, server) })
	defer stop()

	if len(head) > 0 {
		n, err := server.Write(head)
		st.FromClient += int64(n)
		if err != nil {
			abort(client, server)
			return st, err
		}
	}

	var (
		wg      sync.WaitGroup
		downErr error
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		st.ToClient, downErr = half(client, server)
	}()
	n, upErr := half(server, client)
	st.FromClient += n
	wg.Wait()
	client.Close()
	server.Close()
	if ctx.Err() != nil {
		return st, ctx.Err()
	}
	return st, errors.Join(upErr, downErr)
}

func bare(c net.Conn) bool {
	_, ok := c.(*net.TCPConn)
	return ok
}

// half copies src to dst until src ends, then half-closes dst; on an error
// it aborts both so the other direction's copy ends too.
func half(dst, src net.Conn) (int64, error) {
	n, err := copyStream(dst, src)
	if err != nil {
		abort(dst, src)
		return n, err
	}
	if cw, ok := dst.(closeWriter); ok {
		if err := cw.CloseWrite(); err != nil && !errors.Is(err, net.ErrClosed) {
			abort(dst, src)
			return n, err
		}
		return n, nil
	}
	// No half-close on this kind of connection: ending the stream is the
	// only way to pass the EOF on.
	dst.Close()
	return n, nil
}

func copyStream(dst, src net.Conn) (int64, error) {
	if d, ok := dst.(*net.TCPConn); ok {
		if s, ok := src.(*net.TCPConn); ok {
			return io.Copy(d, s) // splice(2) on Linux
		}
	}
	buf := bufPool.Get().(*[bufSize]byte)
	defer bufPool.Put(buf)
	return copyBuffer(dst, src, buf[:])
}

// copyBuffer is io.CopyBuffer without its ReaderFrom/WriterTo shortcuts:
// those would make *net.TCPConn.ReadFrom allocate its own 32 KiB buffer
// for every non-spliceable copy (a TLS source), bypassing the pool.
func copyBuffer(dst io.Writer, src io.Reader, buf []byte) (int64, error) {
	var written int64
	for {
		nr, rerr := src.Read(buf)
		if nr > 0 {
			nw, werr := dst.Write(buf[:nr])
			written += int64(nw)
			if werr != nil {
				return written, werr
			}
			if nw != nr {
				return written, io.ErrShortWrite
			}
		}
		if rerr == io.EOF {
			return written, nil
		}
		if rerr != nil {
			return written, rerr
		}
	}
}

// abort closes both connections, resetting TCP ones (a *net.TCPConn, or a
// wrapper of one such as rawio's) so their peers see the failure instead of
// an orderly end.
func abort(a, b net.Conn) {
	for _, c := range [2]net.Conn{a, b} {
		if tc, ok := c.(interface{ SetLinger(int) error }); ok {
			tc.SetLinger(0) //nolint:errcheck // best effort: the close below is what matters
		}
		c.Close()
	}
}

// bufSize is one TLS record's worth of plaintext: a tls.Conn read returns
// at most one record, so a larger buffer would sit mostly unused.
const bufSize = 16 << 10

var bufPool = sync.Pool{New: func() any { return new([bufSize]byte) }}
