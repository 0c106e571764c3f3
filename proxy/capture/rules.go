package capture

import "strconv"

// family is one of the two address families' iptables flavours.
type family struct {
	binary   string // "iptables" or "ip6tables"
	loopback string // the loopback network, never captured
}

var (
	ipv4 = family{binary: "iptables", loopback: "127.0.0.1/32"}
	ipv6 = family{binary: "ip6tables", loopback: "::1/128"}
)

// chainRules returns, for one family, the rules of each meshlet chain in
// order (without the leading "-A CHAIN"). The order matters: the first
// matching RETURN wins, and the last rule redirects whatever is left.
func (c Config) chainRules(f family) (prerouting, output [][]string) {
	inSkips := append(Ports{}, DefaultSkipInboundPorts...)
	inSkips = append(inSkips, c.SkipInboundPorts...)
	for _, r := range inSkips {
		prerouting = append(prerouting, []string{"-p", "tcp", "-m", "tcp", "--dport", r.iptablesArg(), "-j", "RETURN"})
	}
	prerouting = append(prerouting, []string{"-p", "tcp", "-j", "REDIRECT", "--to-ports", strconv.Itoa(int(c.InboundPort))})

	output = [][]string{
		// The proxy's own connections (to the real destination, to the
		// control plane, and inbound to the app) must go where they were
		// sent, or they would come back into the proxy.
		{"-m", "owner", "--uid-owner", strconv.FormatUint(uint64(c.ProxyUID), 10), "-j", "RETURN"},
		// Anything routed over the loopback interface stays in the pod:
		// connections to 127.0.0.1/::1 and to the pod's own IP (the kernel
		// routes local addresses over lo). The app reaching itself by pod IP
		// therefore goes straight to the app, as it would without the mesh.
		{"-o", "lo", "-j", "RETURN"},
		// Loopback destinations on another interface can't happen in a pod,
		// but a REDIRECT of them would make a loop, so be explicit.
		{"-d", f.loopback, "-j", "RETURN"},
	}
	for _, r := range c.SkipOutboundPorts {
		output = append(output, []string{"-p", "tcp", "-m", "tcp", "--dport", r.iptablesArg(), "-j", "RETURN"})
	}
	output = append(output, []string{"-p", "tcp", "-j", "REDIRECT", "--to-ports", strconv.Itoa(int(c.OutboundPort))})
	return prerouting, output
}

// jumps are the rules in the built-in chains that lead to ours.
var jumps = []struct{ from, to string }{
	{"PREROUTING", ChainPrerouting},
	{"OUTPUT", ChainOutput},
}
