package capture

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strconv"
)

// portsFlag makes a Ports value a flag.Value.
type portsFlag struct{ p *Ports }

func (f portsFlag) String() string {
	if f.p == nil {
		return ""
	}
	return f.p.String()
}

func (f portsFlag) Set(s string) error {
	p, err := ParsePorts(s)
	if err != nil {
		return err
	}
	*f.p = p
	return nil
}

// port16 is a flag.Value for a TCP port.
type port16 struct{ p *uint16 }

func (f port16) String() string {
	if f.p == nil {
		return ""
	}
	return strconv.Itoa(int(*f.p))
}

func (f port16) Set(s string) error {
	n, err := parsePort(s)
	if err != nil {
		return err
	}
	*f.p = n
	return nil
}

// FlagSet binds the flags of `meshlet-proxy init` to c (which should start as
// DefaultConfig) and returns the set; remove is set by --remove.
func FlagSet(c *Config, remove *bool) *flag.FlagSet {
	fs := flag.NewFlagSet("meshlet-proxy init", flag.ContinueOnError)
	fs.Var(port16{&c.InboundPort}, "inbound-port", "port of the proxy's inbound listener; inbound TCP is redirected to it")
	fs.Var(port16{&c.OutboundPort}, "outbound-port", "port of the proxy's outbound listener; outbound TCP is redirected to it")
	fs.Func("proxy-uid", "UID of the proxy, whose connections are not captured (default 2102)", func(s string) error {
		n, err := strconv.ParseUint(s, 10, 32)
		if err != nil {
			return fmt.Errorf("%q is not a UID", s)
		}
		c.ProxyUID = uint32(n)
		return nil
	})
	fs.Var(portsFlag{&c.SkipInboundPorts}, "skip-inbound-ports", "comma-separated ports and ranges of inbound connections not captured (4190,4191 always)")
	fs.Var(portsFlag{&c.SkipOutboundPorts}, "skip-outbound-ports", "comma-separated ports and ranges of outbound connections not captured")
	fs.BoolVar(&c.IPv6, "ipv6", c.IPv6, "also program ip6tables (skipped with a note when unavailable)")
	fs.BoolVar(&c.DryRun, "dry-run", c.DryRun, "print the iptables commands instead of running them")
	fs.BoolVar(remove, "remove", false, "remove the meshlet chains and jumps instead of adding them")
	return fs
}

// RunInit is `meshlet-proxy init`: it parses args (the arguments after
// "init"), then applies (or with --remove, removes) the capture rules,
// printing each command to stdout. The proxy's main calls it.
func RunInit(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c := DefaultConfig()
	var remove bool
	fs := FlagSet(&c, &remove)
	fs.SetOutput(stderr)
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("capture: %w", err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("capture: unexpected argument %q", fs.Arg(0))
	}
	c.Log = stdout
	if remove {
		return Remove(ctx, c)
	}
	return Apply(ctx, c)
}
