// Package capture programs the iptables rules that send a meshed pod's TCP
// traffic through its proxy: inbound connections to the proxy's inbound
// port, outbound connections to its outbound port. It is what
// `meshlet-proxy init` runs inside the pod's network namespace (the
// meshlet-init container), before the application starts.
//
// The rules live in their own nat chains (MESHLET_PREROUTING and
// MESHLET_OUTPUT), reached by one jump each from PREROUTING and OUTPUT, so
// Apply can flush and rewrite them any number of times with the same result
// and Remove leaves the table as it found it. docs/injection.md explains
// each rule.
package capture

import (
	"errors"
	"fmt"
	"io"
)

// Chain names. They are part of the contract with operators reading
// `iptables-save` in a pod, so they don't change.
const (
	ChainPrerouting = "MESHLET_PREROUTING"
	ChainOutput     = "MESHLET_OUTPUT"
)

// Defaults, the values of docs/architecture.md.
const (
	DefaultInboundPort  = 4143
	DefaultOutboundPort = 4140
	DefaultProxyUID     = 2102
)

// DefaultSkipInboundPorts are the proxy's own ports that must reach it
// directly: 4190 (reserved for the proxy's control port) and 4191 (admin:
// /ready, /live, /metrics, which the kubelet probes on the pod IP).
var DefaultSkipInboundPorts = Ports{{First: 4190, Last: 4191}}

// Config says what to capture. The zero value is not usable; start from
// DefaultConfig.
type Config struct {
	// InboundPort is where inbound TCP is redirected (the proxy's inbound
	// listener, 0.0.0.0:4143).
	InboundPort uint16
	// OutboundPort is where outbound TCP is redirected (the proxy's
	// outbound listener, 127.0.0.1:4140).
	OutboundPort uint16
	// ProxyUID is the UID the proxy runs as; its own connections are never
	// captured, or they would loop back into it.
	ProxyUID uint32
	// SkipInboundPorts are destination ports of inbound connections that go
	// straight to the application. DefaultSkipInboundPorts are always
	// skipped as well.
	SkipInboundPorts Ports
	// SkipOutboundPorts are destination ports of outbound connections that
	// bypass the proxy (e.g. a database the proxy shouldn't see).
	SkipOutboundPorts Ports
	// IPv6 also programs ip6tables. When ip6tables or its nat table is not
	// available, IPv6 is skipped with a note on Log instead of failing, so
	// one image works on IPv4-only nodes.
	IPv6 bool
	// DryRun prints the commands to Log instead of running them.
	DryRun bool
	// Log receives one line per command run (and the dry-run output). Nil
	// discards.
	Log io.Writer
	// Run executes one command (argv[0] is "iptables" or "ip6tables") and
	// returns its combined output. Nil runs the binary from PATH. Tests use
	// it to run the commands inside a network namespace.
	Run Runner
}

// DefaultConfig returns the settings of docs/architecture.md, IPv6 on.
func DefaultConfig() Config {
	return Config{
		InboundPort:  DefaultInboundPort,
		OutboundPort: DefaultOutboundPort,
		ProxyUID:     DefaultProxyUID,
		IPv6:         true,
	}
}

// Validate reports the first setting that can't work.
func (c Config) Validate() error {
	if c.InboundPort == 0 {
		return errors.New("capture: inbound port must be set")
	}
	if c.OutboundPort == 0 {
		return errors.New("capture: outbound port must be set")
	}
	if c.InboundPort == c.OutboundPort {
		return fmt.Errorf("capture: inbound and outbound port are both %d", c.InboundPort)
	}
	if c.SkipInboundPorts.Contains(c.InboundPort) {
		return fmt.Errorf("capture: skip-inbound-ports %s contains the inbound port %d", c.SkipInboundPorts, c.InboundPort)
	}
	return nil
}

// Args is the `meshlet-proxy init` command line that reproduces c (without
// Log, Run and DryRun). The injector builds the meshlet-init container's
// arguments with it, so flag names live in one place.
func (c Config) Args() []string {
	args := []string{
		fmt.Sprintf("--inbound-port=%d", c.InboundPort),
		fmt.Sprintf("--outbound-port=%d", c.OutboundPort),
		fmt.Sprintf("--proxy-uid=%d", c.ProxyUID),
	}
	if len(c.SkipInboundPorts) > 0 {
		args = append(args, "--skip-inbound-ports="+c.SkipInboundPorts.String())
	}
	if len(c.SkipOutboundPorts) > 0 {
		args = append(args, "--skip-outbound-ports="+c.SkipOutboundPorts.String())
	}
	args = append(args, fmt.Sprintf("--ipv6=%t", c.IPv6))
	return args
}
