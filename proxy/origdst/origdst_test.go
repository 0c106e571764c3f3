package origdst

import (
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"testing"
)

func sockaddr4(order binary.ByteOrder, ip [4]byte, port uint16) []byte {
	b := make([]byte, sizeofSockaddrInet4)
	order.PutUint16(b, afInet)
	binary.BigEndian.PutUint16(b[2:], port)
	copy(b[4:], ip[:])
	return b
}

func sockaddr6(order binary.ByteOrder, ip [16]byte, port uint16) []byte {
	b := make([]byte, sizeofSockaddrInet6)
	order.PutUint16(b, afInet6)
	binary.BigEndian.PutUint16(b[2:], port)
	copy(b[8:], ip[:])
	return b
}

func TestParseSockaddr(t *testing.T) {
	le, be := binary.LittleEndian, binary.BigEndian
	v6 := netip.MustParseAddr("fd00::1:2").As16()
	mapped := netip.MustParseAddr("::ffff:10.1.2.3").As16()
	for _, tc := range []struct {
		name    string
		in      []byte
		order   binary.ByteOrder
		want    string
		wantErr bool
	}{
		{"ipv4", sockaddr4(le, [4]byte{10, 244, 0, 7}, 8080), le, "10.244.0.7:8080", false},
		{"ipv4 big-endian host", sockaddr4(be, [4]byte{127, 0, 0, 1}, 443), be, "127.0.0.1:443", false},
		{"ipv4 port 0", sockaddr4(le, [4]byte{1, 2, 3, 4}, 0), le, "1.2.3.4:0", false},
		{"ipv4 high port", sockaddr4(le, [4]byte{1, 2, 3, 4}, 65535), le, "1.2.3.4:65535", false},
		{"ipv6", sockaddr6(le, v6, 9090), le, "[fd00::1:2]:9090", false},
		{"ipv6 v4-mapped", sockaddr6(le, mapped, 80), le, "10.1.2.3:80", false},
		{"empty", nil, le, "", true},
		{"one byte", []byte{2}, le, "", true},
		{"ipv4 truncated", sockaddr4(le, [4]byte{1, 2, 3, 4}, 80)[:6], le, "", true},
		{"ipv6 truncated", sockaddr6(le, v6, 80)[:20], le, "", true},
		{"unknown family", []byte{1, 0, 0, 80, 1, 2, 3, 4, 0, 0, 0, 0, 0, 0, 0, 0}, le, "", true},
		{"wrong byte order", sockaddr4(be, [4]byte{1, 2, 3, 4}, 80), le, "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseSockaddr(tc.in, tc.order)
			if (err != nil) != tc.wantErr {
				t.Fatalf("parseSockaddr(%v) error %v, wantErr %v", tc.in, err, tc.wantErr)
			}
			if err == nil && got.String() != tc.want {
				t.Errorf("parseSockaddr(%v) = %v, want %s", tc.in, got, tc.want)
			}
		})
	}
}

func FuzzParseSockaddr(f *testing.F) {
	f.Add(sockaddr4(binary.LittleEndian, [4]byte{10, 0, 0, 1}, 80))
	f.Add(sockaddr6(binary.LittleEndian, netip.IPv6Loopback().As16(), 443))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		ap, err := parseSockaddr(b, binary.LittleEndian)
		if err != nil {
			return
		}
		if !ap.IsValid() {
			t.Fatalf("parseSockaddr(%v) = invalid %v without error", b, ap)
		}
		if ap.Port() != binary.BigEndian.Uint16(b[2:4]) {
			t.Fatalf("port %d, bytes %v", ap.Port(), b[2:4])
		}
	})
}

// TestGetDirect: a connection nobody redirected reports ErrNotRedirected,
// whether or not conntrack is loaded on this machine.
func TestGetDirect(t *testing.T) {
	for _, network := range []string{"tcp4", "tcp6"} {
		t.Run(network, func(t *testing.T) {
			addr := "127.0.0.1:0"
			if network == "tcp6" {
				addr = "[::1]:0"
			}
			ln, err := net.Listen(network, addr)
			if err != nil {
				t.Skipf("no %s loopback: %v", network, err)
			}
			defer ln.Close()
			c, err := net.Dial(network, ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			s, err := ln.Accept()
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			dst, err := Get(s.(*net.TCPConn))
			if !errors.Is(err, ErrNotRedirected) {
				t.Fatalf("Get on a direct connection = %v, %v; want ErrNotRedirected", dst, err)
			}
		})
	}
}
