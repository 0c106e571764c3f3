package httpproxy

import (
	"crypto/tls"
	"errors"
	"net"
	"syscall"
	"unsafe"
)

// connAlive reports whether an idle pooled connection can still carry a
// request: the peer has neither closed it nor sent anything unasked (a TLS
// close_notify, say). It peeks without blocking, in one system call.
func connAlive(c net.Conn) bool {
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	sc, ok := c.(syscall.Conn)
	if !ok {
		return true
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	alive := false
	err = rc.Read(func(fd uintptr) bool {
		// A raw call, as the connection's reads and writes (package
		// rawio): it cannot block, and syscall.Recvfrom would wake the
		// runtime's monitor thread on every reuse.
		var b [1]byte
		_, _, e := syscall.RawSyscall6(syscall.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&b[0])), 1,
			syscall.MSG_PEEK|syscall.MSG_DONTWAIT, 0, 0)
		alive = e == syscall.EAGAIN
		return true
	})
	return err == nil && alive
}

// isReset reports a connection reset by the peer.
func isReset(err error) bool {
	return errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}
