package capture

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// PortRange is an inclusive range of TCP ports; a single port has First == Last.
type PortRange struct {
	First, Last uint16
}

// String returns "8080" for a single port and "8000-8100" for a range, the
// form ParsePorts reads.
func (r PortRange) String() string {
	if r.First == r.Last {
		return strconv.Itoa(int(r.First))
	}
	return fmt.Sprintf("%d-%d", r.First, r.Last)
}

// iptablesArg is the port in iptables' own syntax ("8000:8100").
func (r PortRange) iptablesArg() string {
	if r.First == r.Last {
		return strconv.Itoa(int(r.First))
	}
	return fmt.Sprintf("%d:%d", r.First, r.Last)
}

// Contains reports whether port p is inside the range.
func (r PortRange) Contains(p uint16) bool { return r.First <= p && p <= r.Last }

// Ports is a list of port ranges, as written in annotations and flags:
// comma-separated ports and ranges, e.g. "25,443,8000-8100".
type Ports []PortRange

// String joins the ranges with commas; ParsePorts(p.String()) gives p back.
func (p Ports) String() string {
	parts := make([]string, len(p))
	for i, r := range p {
		parts[i] = r.String()
	}
	return strings.Join(parts, ",")
}

// Contains reports whether any range holds port.
func (p Ports) Contains(port uint16) bool {
	for _, r := range p {
		if r.Contains(port) {
			return true
		}
	}
	return false
}

// maxPortItems bounds the list so that an annotation can't make the init
// container write thousands of rules.
const maxPortItems = 64

// ParsePorts reads a comma-separated list of ports (1–65535) and inclusive
// ranges ("8000-8100"). Spaces around items are allowed, empty items are
// not, except that the whole string may be empty (no ports). The result is
// sorted and duplicates are removed; overlapping ranges are kept as given.
func ParsePorts(s string) (Ports, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, nil
	}
	items := strings.Split(s, ",")
	if len(items) > maxPortItems {
		return nil, fmt.Errorf("capture: port list has %d items, at most %d are allowed", len(items), maxPortItems)
	}
	out := make(Ports, 0, len(items))
	for _, item := range items {
		item = strings.TrimSpace(item)
		if item == "" {
			return nil, fmt.Errorf("capture: empty item in port list %q", s)
		}
		first, last, isRange := strings.Cut(item, "-")
		lo, err := parsePort(first)
		if err != nil {
			return nil, fmt.Errorf("capture: port list %q: %w", s, err)
		}
		hi := lo
		if isRange {
			if hi, err = parsePort(last); err != nil {
				return nil, fmt.Errorf("capture: port list %q: %w", s, err)
			}
			if hi < lo {
				return nil, fmt.Errorf("capture: port list %q: range %q ends before it starts", s, item)
			}
		}
		out = append(out, PortRange{First: lo, Last: hi})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].First != out[j].First {
			return out[i].First < out[j].First
		}
		return out[i].Last < out[j].Last
	})
	uniq := out[:1]
	for _, r := range out[1:] {
		if r != uniq[len(uniq)-1] {
			uniq = append(uniq, r)
		}
	}
	return uniq, nil
}

func parsePort(s string) (uint16, error) {
	s = strings.TrimSpace(s)
	n, err := strconv.ParseUint(s, 10, 16)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("%q is not a port (1-65535)", s)
	}
	return uint16(n), nil
}
