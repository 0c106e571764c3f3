// Package origdst reads the destination a connection had before iptables
// redirected it to the proxy (REDIRECT or DNAT in the nat table), from the
// kernel's connection tracking: getsockopt SO_ORIGINAL_DST (IPv4) and
// IP6T_SO_ORIGINAL_DST (IPv6).
package origdst

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
)

// ErrNotRedirected is returned when the connection was not redirected:
// conntrack has no NAT entry for it (or no entry at all), or its original
// destination is the socket's own address.
var ErrNotRedirected = errors.New("origdst: connection was not redirected")

// Socket option numbers from linux/netfilter_ipv4.h and
// linux/netfilter_ipv6/ip6_tables.h; both are 80, at different levels.
const (
	soOriginalDst     = 80 // SOL_IP
	ip6tSoOriginalDst = 80 // SOL_IPV6
)

// Address families as the kernel writes them in sockaddr (host byte order).
const (
	afInet  = 2
	afInet6 = 10
)

// sockaddr sizes: struct sockaddr_in is 16 bytes, sockaddr_in6 is 28.
const (
	sizeofSockaddrInet4 = 16
	sizeofSockaddrInet6 = 28
)

// parseSockaddr decodes the struct sockaddr_in or sockaddr_in6 that the
// getsockopt calls fill in. The family is in host byte order (the caller
// passes binary.NativeEndian), the port and address in network byte order.
func parseSockaddr(b []byte, order binary.ByteOrder) (netip.AddrPort, error) {
	if len(b) < 2 {
		return netip.AddrPort{}, fmt.Errorf("origdst: sockaddr of %d bytes, too short for a family", len(b))
	}
	switch fam := order.Uint16(b); fam {
	case afInet:
		if len(b) < 8 {
			return netip.AddrPort{}, fmt.Errorf("origdst: sockaddr_in of %d bytes, want %d", len(b), sizeofSockaddrInet4)
		}
		port := binary.BigEndian.Uint16(b[2:4])
		addr := netip.AddrFrom4([4]byte(b[4:8]))
		return netip.AddrPortFrom(addr, port), nil
	case afInet6:
		if len(b) < 24 {
			return netip.AddrPort{}, fmt.Errorf("origdst: sockaddr_in6 of %d bytes, want %d", len(b), sizeofSockaddrInet6)
		}
		port := binary.BigEndian.Uint16(b[2:4])
		// b[4:8] is the flow info; the address follows.
		addr := netip.AddrFrom16([16]byte(b[8:24])).Unmap()
		return netip.AddrPortFrom(addr, port), nil
	default:
		return netip.AddrPort{}, fmt.Errorf("origdst: sockaddr family %d, want %d (inet) or %d (inet6)", fam, afInet, afInet6)
	}
}
