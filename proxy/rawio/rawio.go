//go:build unix

// Package rawio reads and writes TCP sockets with raw system calls, through
// the socket's netpoller descriptor (syscall.RawConn), instead of the
// runtime's syscall.Syscall.
//
// The difference is the runtime's bookkeeping around a system call. A
// syscall.Syscall tells the scheduler the goroutine may block; when the
// process had been idle, that wakes the runtime's monitor thread (sysmon),
// which then polls every 20 µs for a millisecond or more in case the call
// blocks. A proxy idles between requests, so at a few thousand requests a
// second that monitor costs a quarter of its CPU (loadrun, with perf).
// A read or write of a non-blocking socket never blocks: it returns data
// or EAGAIN, after which RawConn waits in the netpoller exactly as a
// net.Conn does. Deadlines, Close and errors behave as net.Conn's.
//
// Two conditions come with it:
//   - The descriptor must stay non-blocking: a raw call that blocks holds its
//     thread and processor where the runtime cannot see it, and a garbage
//     collection waiting to stop the world would wait with it. New checks
//     O_NONBLOCK; nothing may call File on a wrapped connection afterwards
//     (os.File.Fd makes the socket blocking).
//   - While a busy process does only raw calls, the monitor thread may sleep
//     until a timer is due or a goroutine makes an ordinary system call (an
//     accept, a dial, a log line): a minute at most. Its other duties wait
//     with it: taking the processor from a goroutine that ran 10 ms without
//     yielding, for one. The proxy's goroutines block on I/O long before.
//
// ReadFrom and WriteTo are the *net.TCPConn's (io.Copy takes them): correct,
// with the runtime's bookkeeping.
package rawio

import (
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"unsafe"
)

// Conn is a TCP connection whose Read and Write use raw system calls. Its
// other methods are the *net.TCPConn's.
type Conn struct {
	*net.TCPConn
	rc  syscall.RawConn
	rmu sync.Mutex
	r   op
	wmu sync.Mutex
	w   op
}

// op is one read or write in progress: its buffer, the bytes done and the
// error, filled by the function RawConn calls with the descriptor.
type op struct {
	p    []byte
	n    int
	err  syscall.Errno
	zero bool                  // a write wrote nothing, without an error
	fn   func(fd uintptr) bool // bound once, so a call allocates nothing
}

var errBlocking = errors.New("rawio: the socket is in blocking mode")

// New returns c with raw reads and writes, or an error if its descriptor
// is not available (the connection is closed) or is blocking.
func New(c *net.TCPConn) (*Conn, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return nil, err
	}
	var flags int
	var ferr error
	if err := rc.Control(func(fd uintptr) {
		r, _, e := syscall.RawSyscall(syscall.SYS_FCNTL, fd, syscall.F_GETFL, 0)
		flags = int(r)
		if e != 0 {
			ferr = e
		}
	}); err != nil {
		return nil, err
	}
	if ferr != nil {
		return nil, ferr
	}
	if flags&syscall.O_NONBLOCK == 0 {
		return nil, errBlocking
	}
	rw := &Conn{TCPConn: c, rc: rc}
	rw.r.fn = rw.r.read
	rw.w.fn = rw.w.write
	return rw, nil
}

// Wrap returns c with raw reads and writes when it is a *net.TCPConn, and
// c itself otherwise.
func Wrap(c net.Conn) net.Conn {
	if tc, ok := c.(*net.TCPConn); ok {
		if rw, err := New(tc); err == nil {
			return rw
		}
	}
	return c
}

// maxRW bounds one system call, as internal/poll does.
const maxRW = 1 << 30

func (o *op) read(fd uintptr) bool {
	p := o.p
	if len(p) > maxRW {
		p = p[:maxRW]
	}
	for {
		n, _, e := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
		switch e {
		case 0:
			o.n = int(n)
			return true
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false // wait in the netpoller
		}
		o.err = e
		return true
	}
}

func (o *op) write(fd uintptr) bool {
	for o.n < len(o.p) {
		p := o.p[o.n:]
		if len(p) > maxRW {
			p = p[:maxRW]
		}
		n, _, e := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
		switch {
		case e == 0 && n == 0:
			o.zero = true // as internal/poll: io.ErrUnexpectedEOF rather than a spin
			return true
		case e == 0:
			o.n += int(n)
			continue
		case e == syscall.EINTR:
			continue
		case e == syscall.EAGAIN:
			return false // the socket's buffer is full: wait until it drains
		}
		o.err = e
		return true
	}
	return true
}

// Read reads as net.Conn's Read: io.EOF once the peer closed its side.
func (c *Conn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		// Nothing to read, but a closed connection says so, as net's does.
		if err := c.rc.Control(func(uintptr) {}); err != nil {
			return 0, c.opError("read", err)
		}
		return 0, nil
	}
	c.rmu.Lock()
	c.r.p, c.r.n, c.r.err = p, 0, 0
	err := c.rc.Read(c.r.fn)
	n, errno := c.r.n, c.r.err
	c.r.p = nil
	c.rmu.Unlock()
	raceRead(p, n, err == nil && errno == 0)
	switch {
	case err != nil:
		return 0, c.opError("read", err)
	case errno != 0:
		return 0, c.opError("read", os.NewSyscallError("read", errno))
	case n == 0:
		return 0, io.EOF
	}
	return n, nil
}

// Write writes all of p unless an error comes first, as net.Conn's Write.
func (c *Conn) Write(p []byte) (int, error) {
	if len(p) == 0 {
		// Nothing to write, but a closed connection or a past deadline
		// says so, as net's does.
		if err := c.rc.Write(func(uintptr) bool { return true }); err != nil {
			return 0, c.opError("write", err)
		}
		return 0, nil
	}
	raceWriteStart()
	c.wmu.Lock()
	c.w.p, c.w.n, c.w.err, c.w.zero = p, 0, 0, false
	err := c.rc.Write(c.w.fn)
	n, errno, zero := c.w.n, c.w.err, c.w.zero
	c.w.p = nil
	c.wmu.Unlock()
	raceWrote(p, n)
	switch {
	case err != nil:
		return n, c.opError("write", err)
	case errno != 0:
		return n, c.opError("write", os.NewSyscallError("write", errno))
	case zero:
		return n, c.opError("write", io.ErrUnexpectedEOF)
	}
	return n, nil
}

// opError gives an error the form net.Conn's have: an *net.OpError naming
// the operation and addresses, wrapping os.ErrDeadlineExceeded,
// net.ErrClosed or the system call's error.
func (c *Conn) opError(op string, err error) error {
	var oe *net.OpError
	if errors.As(err, &oe) {
		err = oe.Err // RawConn's own, "raw-read" or "raw-write"
	}
	return &net.OpError{Op: op, Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: err}
}
