package destination

import (
	"fmt"
	"strconv"
	"strings"
)

// OpaquePortsAnnotation lists, on a Service (its ports) or a Pod (its
// container ports), the ports whose traffic is opaque TCP:
// "3306,5432,8000-8100".
const OpaquePortsAnnotation = "config.meshlet.io/opaque-ports"

// DefaultOpaquePorts are opaque when a Service or Pod has no opaque-ports
// annotation: server-speaks-first protocols (SMTP, MySQL, PostgreSQL,
// Redis, ...) that protocol detection would stall. It is the proxy's
// default list too (docs/annotations.md); an annotation replaces it.
const DefaultOpaquePorts = "25,587,3306,4444,5432,6379,9300,11211"

// portRange is an inclusive range of ports.
type portRange struct{ lo, hi uint16 }

// portSet is a parsed port list; small, so a slice scan is fastest.
type portSet []portRange

func (s portSet) contains(p uint16) bool {
	for _, r := range s {
		if p >= r.lo && p <= r.hi {
			return true
		}
	}
	return false
}

// parsePortSet parses "80,443,8000-8100" (spaces allowed around items).
// On error it returns the items that parsed and an error naming the bad
// one, so one typo does not drop the whole list.
func parsePortSet(s string) (portSet, error) {
	var out portSet
	var bad []string
	for item := range strings.SplitSeq(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		r, err := parsePortRange(item)
		if err != nil {
			bad = append(bad, err.Error())
			continue
		}
		out = append(out, r)
	}
	if len(bad) > 0 {
		return out, fmt.Errorf("destination: port list %q: %s", s, strings.Join(bad, "; "))
	}
	return out, nil
}

func parsePortRange(item string) (portRange, error) {
	lo, hi, isRange := strings.Cut(item, "-")
	a, err := portNumber(strings.TrimSpace(lo))
	if err != nil {
		return portRange{}, fmt.Errorf("%q: %v", item, err)
	}
	if !isRange {
		return portRange{a, a}, nil
	}
	b, err := portNumber(strings.TrimSpace(hi))
	if err != nil {
		return portRange{}, fmt.Errorf("%q: %v", item, err)
	}
	if b < a {
		return portRange{}, fmt.Errorf("%q: range ends before it starts", item)
	}
	return portRange{a, b}, nil
}

func portNumber(s string) (uint16, error) {
	n, err := strconv.ParseUint(s, 10, 16)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("%q is not a port from 1 to 65535", s)
	}
	return uint16(n), nil
}
