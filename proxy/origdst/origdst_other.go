//go:build !linux

package origdst

import (
	"fmt"
	"net"
	"net/netip"
)

// Get always reports ErrNotRedirected: transparent redirection with
// iptables exists only on Linux.
func Get(c *net.TCPConn) (netip.AddrPort, error) {
	return netip.AddrPort{}, fmt.Errorf("%w: SO_ORIGINAL_DST needs Linux", ErrNotRedirected)
}
