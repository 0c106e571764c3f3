package destination

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// ErrInvalidAuthority is wrapped by every error about a malformed authority
// or request; the server maps it to codes.InvalidArgument.
var ErrInvalidAuthority = errors.New("destination: invalid authority")

// maxAuthorityLen bounds what is parsed: a 253-byte DNS name, a colon and a
// five-digit port, with room for IPv6 brackets.
const maxAuthorityLen = 261

// Authority is a parsed host[:port].
type Authority struct {
	// Host is the lower-cased DNS name without a trailing dot; "" when the
	// host is an IP literal.
	Host string
	// IP is set when the host is an IP literal.
	IP netip.Addr
	// Port is 0 when the authority has none.
	Port uint16
}

// String formats the authority canonically (IPv6 in brackets).
func (a Authority) String() string {
	host := a.Host
	if a.IP.IsValid() {
		host = a.IP.String()
		if a.IP.Is6() {
			host = "[" + host + "]"
		}
	}
	if a.Port == 0 {
		return host
	}
	return host + ":" + strconv.Itoa(int(a.Port))
}

// ParseAuthority parses host[:port] as seen in an HTTP request or as a
// connection's original destination. IPv6 literals must be in brackets when
// a port follows. Names must be valid DNS names (RFC 1123 labels).
func ParseAuthority(s string) (Authority, error) {
	if s == "" {
		return Authority{}, fmt.Errorf("%w: empty", ErrInvalidAuthority)
	}
	if len(s) > maxAuthorityLen {
		return Authority{}, fmt.Errorf("%w: %d bytes long, at most %d allowed", ErrInvalidAuthority, len(s), maxAuthorityLen)
	}
	host, portStr, hasPort, err := splitHostPort(s)
	if err != nil {
		return Authority{}, fmt.Errorf("%w %q: %v", ErrInvalidAuthority, s, err)
	}
	var a Authority
	if hasPort {
		p, err := parsePort(portStr)
		if err != nil {
			return Authority{}, fmt.Errorf("%w %q: %v", ErrInvalidAuthority, s, err)
		}
		a.Port = p
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		if ip.Zone() != "" {
			return Authority{}, fmt.Errorf("%w %q: IPv6 zones are not allowed", ErrInvalidAuthority, s)
		}
		a.IP = ip.Unmap()
		return a, nil
	}
	if strings.Contains(host, ":") {
		return Authority{}, fmt.Errorf("%w %q: bad IPv6 address %q", ErrInvalidAuthority, s, host)
	}
	name, err := checkDNSName(host)
	if err != nil {
		return Authority{}, fmt.Errorf("%w %q: %v", ErrInvalidAuthority, s, err)
	}
	a.Host = name
	return a, nil
}

func splitHostPort(s string) (host, port string, hasPort bool, err error) {
	if strings.HasPrefix(s, "[") {
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return "", "", false, errors.New("missing ']' after IPv6 address")
		}
		host, rest := s[1:end], s[end+1:]
		if rest == "" {
			return host, "", false, nil
		}
		if rest[0] != ':' {
			return "", "", false, fmt.Errorf("unexpected %q after ']'", rest)
		}
		if _, err := netip.ParseAddr(host); err != nil || !strings.Contains(host, ":") {
			return "", "", false, fmt.Errorf("bad IPv6 address %q in brackets", host)
		}
		return host, rest[1:], true, nil
	}
	switch strings.Count(s, ":") {
	case 0:
		return s, "", false, nil
	case 1:
		i := strings.IndexByte(s, ':')
		return s[:i], s[i+1:], true, nil
	}
	// A bare IPv6 address without a port is unambiguous only if it parses.
	if _, err := netip.ParseAddr(s); err == nil {
		return s, "", false, nil
	}
	return "", "", false, errors.New("too many colons (IPv6 addresses need brackets when a port follows)")
}

func parsePort(s string) (uint16, error) {
	if s == "" {
		return 0, errors.New("empty port")
	}
	if len(s) > 5 {
		return 0, fmt.Errorf("port %q out of range 1-65535", s)
	}
	n := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("port %q is not a number", s)
		}
		n = n*10 + int(c-'0')
	}
	if n < 1 || n > 65535 {
		return 0, fmt.Errorf("port %q out of range 1-65535", s)
	}
	return uint16(n), nil
}

// checkDNSName validates and lower-cases a DNS name; one trailing dot (a
// fully qualified name) is accepted and removed.
func checkDNSName(host string) (string, error) {
	name := strings.TrimSuffix(host, ".")
	if name == "" {
		return "", errors.New("empty host")
	}
	if len(name) > 253 {
		return "", fmt.Errorf("host is %d bytes long, at most 253 allowed", len(name))
	}
	name = strings.ToLower(name)
	for label := range strings.SplitSeq(name, ".") {
		if err := checkLabel(label); err != nil {
			return "", fmt.Errorf("host %q: %v", host, err)
		}
	}
	return name, nil
}

func checkLabel(label string) error {
	if label == "" {
		return errors.New("empty label")
	}
	if len(label) > 63 {
		return fmt.Errorf("label %q longer than 63 bytes", label)
	}
	for i := 0; i < len(label); i++ {
		c := label[i]
		ok := c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-'
		if !ok {
			return fmt.Errorf("label %q has invalid character %q", label, c)
		}
	}
	if label[0] == '-' || label[len(label)-1] == '-' {
		return fmt.Errorf("label %q starts or ends with '-'", label)
	}
	return nil
}
