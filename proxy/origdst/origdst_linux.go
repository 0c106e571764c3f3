//go:build linux

package origdst

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"unsafe"
)

// Get returns the original destination of c, a connection accepted by a
// listener that iptables redirects to. It returns ErrNotRedirected (wrapped)
// when the connection reached the listener directly.
func Get(c *net.TCPConn) (netip.AddrPort, error) {
	local := c.LocalAddr().(*net.TCPAddr).AddrPort()
	local = netip.AddrPortFrom(local.Addr().Unmap(), local.Port())
	raw, err := c.SyscallConn()
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("origdst: %w", err)
	}
	// The IPv4 option first for IPv4 (and v4-mapped) sockets, the IPv6 one
	// first otherwise; the other is tried if the first fails, since which
	// table the kernel consults follows the socket's family.
	levels := [2][2]int{{syscall.SOL_IP, soOriginalDst}, {syscall.SOL_IPV6, ip6tSoOriginalDst}}
	if local.Addr().Is6() {
		levels[0], levels[1] = levels[1], levels[0]
	}
	var (
		dst    netip.AddrPort
		errs   [2]error
		ctlErr error
	)
	ctlErr = raw.Control(func(fd uintptr) {
		for i, l := range levels {
			dst, errs[i] = getsockopt(fd, l[0], l[1])
			if errs[i] == nil {
				return
			}
		}
	})
	if ctlErr != nil {
		return netip.AddrPort{}, fmt.Errorf("origdst: %w", ctlErr)
	}
	if errs[0] != nil && errs[1] != nil {
		return netip.AddrPort{}, fmt.Errorf("%w: %w", ErrNotRedirected, errors.Join(errs[0], errs[1]))
	}
	// With conntrack loaded, a connection nobody redirected has an entry
	// whose original destination is simply the listener itself.
	if dst == local {
		return netip.AddrPort{}, fmt.Errorf("%w: original destination is the listener %s", ErrNotRedirected, local)
	}
	return dst, nil
}

func getsockopt(fd uintptr, level, opt int) (netip.AddrPort, error) {
	var buf [sizeofSockaddrInet6]byte
	size := uint32(len(buf))
	_, _, errno := syscall.Syscall6(syscall.SYS_GETSOCKOPT, fd, uintptr(level), uintptr(opt),
		uintptr(unsafe.Pointer(&buf[0])), uintptr(unsafe.Pointer(&size)), 0)
	if errno != 0 {
		return netip.AddrPort{}, fmt.Errorf("getsockopt level %d option %d: %w", level, opt, errno)
	}
	return parseSockaddr(buf[:min(int(size), len(buf))], binary.NativeEndian)
}
