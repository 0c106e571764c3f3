package proxy

import (
	"flag"
	"fmt"
	"strings"

	"github.com/meshlet/meshlet/proxy/capture"
)

// EnvPrefix starts the environment variable of every setting: flag
// --detect-timeout is MESHLET_PROXY_DETECT_TIMEOUT.
const EnvPrefix = "MESHLET_PROXY_"

// EnvName returns the environment variable of the flag name.
func EnvName(flagName string) string {
	return EnvPrefix + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// RegisterFlags binds every setting of c to a flag of fs; the flags'
// defaults are c's current values.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.OutboundAddr, "outbound-addr", c.OutboundAddr, "listener for the application's outbound connections")
	fs.StringVar(&c.InboundAddr, "inbound-addr", c.InboundAddr, "listener for inbound connections to the application")
	fs.StringVar(&c.AdminAddr, "admin-addr", c.AdminAddr, "listener for /metrics, /ready and /live")
	fs.BoolVar(&c.IPv6, "ipv6", c.IPv6, "also listen on [::1] / [::] at the outbound and inbound ports (skipped when the host has no IPv6)")
	fs.StringVar(&c.InboundTarget, "inbound-target", c.InboundTarget, "host:port all inbound traffic goes to (default 127.0.0.1:<original port>)")
	fs.StringVar(&c.OutboundFallback, "outbound-fallback", c.OutboundFallback, "authority for outbound opaque connections that were not redirected (default: refuse them)")
	fs.BoolVar(&c.InboundStrict, "inbound-strict", c.InboundStrict, "accept only mTLS from mesh peers on the inbound listener")
	fs.Var(portsValue{&c.OpaquePorts}, "opaque-ports", "ports and ranges forwarded as opaque TCP without protocol detection")
	fs.DurationVar(&c.DetectTimeout, "detect-timeout", c.DetectTimeout, "wait for a client's first bytes before treating the connection as opaque")
	fs.DurationVar(&c.ConnectTimeout, "connect-timeout", c.ConnectTimeout, "bound on resolving an authority and on connecting (TCP + mTLS) to an endpoint")
	fs.DurationVar(&c.RequestTimeout, "request-timeout", c.RequestTimeout, "bound on an HTTP request's wait for response headers (0: none)")
	fs.DurationVar(&c.ShutdownGrace, "shutdown-grace", c.ShutdownGrace, "time open connections may take to finish after SIGTERM")
	fs.StringVar(&c.LogLevel, "log-level", c.LogLevel, "debug, info, warn or error")
	fs.BoolVar(&c.AdminPprof, "admin-pprof", c.AdminPprof, "serve Go's profiler at /debug/pprof/ on the admin listener")
	fs.IntVar(&c.Cores, "cores", c.Cores, "CPU cores the proxy runs on at once, GOMAXPROCS (0: one per CPU)")
	fs.StringVar(&c.DestinationAddr, "destination-addr", c.DestinationAddr, "meshlet-destination host:port (default: no service discovery)")
	fs.StringVar(&c.IdentityAddr, "identity-addr", c.IdentityAddr, "meshlet-identity host:port (default: no identity, no mTLS)")
	fs.StringVar(&c.IdentityTokenFile, "identity-token-file", c.IdentityTokenFile, "token presented to meshlet-identity")
	fs.StringVar(&c.IdentityServerID, "identity-server-id", c.IdentityServerID, "meshlet-identity's SPIFFE ID: speak TLS to it and verify it (default: plaintext)")
	fs.StringVar(&c.TrustAnchors, "trust-anchors", c.TrustAnchors, "PEM of the mesh trust anchors")
	fs.StringVar(&c.TrustAnchorsFile, "trust-anchors-file", c.TrustAnchorsFile, "file with the PEM of the mesh trust anchors")
	fs.StringVar(&c.Identity, "identity", c.Identity, "this proxy's SPIFFE ID")
	fs.StringVar(&c.PodName, "pod-name", c.PodName, "the pod's name (downward API)")
	fs.StringVar(&c.PodNamespace, "pod-namespace", c.PodNamespace, "the pod's namespace (downward API)")
	fs.StringVar(&c.ServiceAccount, "service-account", c.ServiceAccount, "the pod's ServiceAccount (downward API; informational)")
}

// ApplyEnv sets every flag of fs whose environment variable (EnvName) is
// set, so that flags parsed afterwards override the environment. lookup is
// os.LookupEnv in main.
func ApplyEnv(fs *flag.FlagSet, lookup func(string) (string, bool)) error {
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if err != nil {
			return
		}
		name := EnvName(f.Name)
		if v, ok := lookup(name); ok {
			if e := fs.Set(f.Name, v); e != nil {
				err = fmt.Errorf("proxy: %s=%q: %w", name, v, e)
			}
		}
	})
	return err
}

// ParseConfig returns DefaultConfig overridden by the environment, then by
// args (the command line without the program name).
func ParseConfig(name string, args []string, lookup func(string) (string, bool)) (Config, *flag.FlagSet, error) {
	c := DefaultConfig()
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	c.RegisterFlags(fs)
	if err := ApplyEnv(fs, lookup); err != nil {
		return c, fs, err
	}
	if err := fs.Parse(args); err != nil {
		return c, fs, fmt.Errorf("proxy: %w", err)
	}
	if fs.NArg() > 0 {
		return c, fs, fmt.Errorf("proxy: unexpected argument %q", fs.Arg(0))
	}
	return c, fs, c.Validate()
}

// portsValue makes capture.Ports a flag.Value ("25,3306,8000-8100").
type portsValue struct{ p *capture.Ports }

func (v portsValue) String() string {
	if v.p == nil {
		return ""
	}
	return v.p.String()
}

func (v portsValue) Set(s string) error {
	p, err := capture.ParsePorts(s)
	if err != nil {
		return err
	}
	*v.p = p
	return nil
}
