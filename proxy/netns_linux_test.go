//go:build linux

package proxy

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/meshlet/meshlet/proxy/endpoint"
	"github.com/meshlet/meshlet/proxy/origdst"
)

// The transparent-proxy test runs in a network namespace the test creates,
// where iptables REDIRECTs connections to made-up addresses to the proxy's
// listeners, as `meshlet-proxy init` does in a pod. A socket belongs to
// the namespace of the thread that created it, and the proxy creates
// sockets on any thread, so the whole proxy must live in the namespace:
// TestTransparentProxy re-runs this test binary inside it (ip netns exec),
// where TestTransparentProxyInNetns does the work.

const netnsChildEnv = "MESHLET_PROXY_NETNS_CHILD"

// Addresses inside the namespace: a veth pair with both ends in it holds
// 10.252.0.1/24 and fd00:252::1/64 so the made-up destinations below are
// routable; nothing is routed out of the namespace.
const (
	outboundVIP   = "10.252.0.2"  // every port → outbound listener 127.0.0.1:4140
	inboundVIP    = "10.252.0.3"  // every port → inbound listener :4143
	outboundVIP6  = "fd00:252::2" // every port → outbound listener [::1]:4150
	nsOutbound    = "127.0.0.1:4140"
	nsOutbound6   = "[::1]:4150"
	nsInbound     = "0.0.0.0:4143"
	nsAppPort     = 9090 // the "application" behind the inbound listener
	nsGreeterPort = 7001
)

func TestTransparentProxy(t *testing.T) {
	if os.Getenv(netnsChildEnv) != "" {
		t.Skip("running as the child")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root to create a network namespace and program iptables")
	}
	for _, bin := range []string{"ip", "iptables"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("needs %s (scripts/deps.sh installs iproute2 and iptables)", bin)
		}
	}
	var rnd [3]byte
	rand.Read(rnd[:])
	ns := "mlpx" + hex.EncodeToString(rnd[:])
	run := func(argv ...string) error {
		out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("%s: %v: %s", strings.Join(argv, " "), err, out)
		}
		return nil
	}
	must := func(argv ...string) {
		t.Helper()
		if err := run(argv...); err != nil {
			t.Fatal(err)
		}
	}
	must("ip", "netns", "add", ns)
	t.Cleanup(func() {
		if err := run("ip", "netns", "del", ns); err != nil {
			t.Errorf("cleanup: %v", err)
		}
		out, _ := exec.Command("ip", "netns", "list").CombinedOutput()
		if strings.Contains(string(out), ns) {
			t.Errorf("network namespace %s left behind", ns)
		}
	})
	in := func(argv ...string) []string { return append([]string{"ip", "netns", "exec", ns}, argv...) }
	must(in("ip", "link", "set", "lo", "up")...)
	must(in("ip", "link", "add", "v0", "type", "veth", "peer", "name", "v1")...)
	must(in("ip", "addr", "add", "10.252.0.1/24", "dev", "v0")...)
	must(in("ip", "link", "set", "v0", "up")...)
	must(in("ip", "link", "set", "v1", "up")...)
	must(in("iptables", "-t", "nat", "-A", "OUTPUT", "-p", "tcp", "-d", outboundVIP, "-j", "REDIRECT", "--to-ports", "4140")...)
	must(in("iptables", "-t", "nat", "-A", "OUTPUT", "-p", "tcp", "-d", inboundVIP, "-j", "REDIRECT", "--to-ports", "4143")...)
	ipv6 := run(in("ip", "addr", "add", "fd00:252::1/64", "dev", "v0", "nodad")...) == nil &&
		run(in("ip6tables", "-t", "nat", "-A", "OUTPUT", "-p", "tcp", "-d", outboundVIP6, "-j", "REDIRECT", "--to-ports", "4150")...) == nil

	args := []string{"-test.run", "^TestTransparentProxyInNetns$", "-test.v"}
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns, os.Args[0]}, args...)...)
	cmd.Env = append(os.Environ(), netnsChildEnv+"=1", fmt.Sprintf("MESHLET_PROXY_NETNS_IPV6=%v", ipv6))
	out, err := cmd.CombinedOutput()
	t.Logf("inside %s (ipv6 %v):\n%s", ns, ipv6, out)
	if err != nil {
		t.Fatalf("the test inside the namespace failed: %v", err)
	}
	if !strings.Contains(string(out), "--- PASS: TestTransparentProxyInNetns") {
		t.Fatal("the test inside the namespace did not pass")
	}
}

func TestTransparentProxyInNetns(t *testing.T) {
	if os.Getenv(netnsChildEnv) == "" {
		t.Skip("runs inside the namespace TestTransparentProxy creates")
	}
	echo := echoServer(t)
	greeterLn, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", nsGreeterPort))
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			c, err := greeterLn.Accept()
			if err != nil {
				return
			}
			c.Write([]byte("220 ready\r\n"))
			go func() { defer c.Close(); io.Copy(c, c) }()
		}
	}()
	defer greeterLn.Close()
	appLn, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", nsAppPort))
	if err != nil {
		t.Fatal(err)
	}
	defer appLn.Close()
	go func() {
		for {
			c, err := appLn.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); c.Write([]byte("app:")); io.Copy(c, c); c.(*net.TCPConn).CloseWrite() }()
		}
	}()
	app := httpApp(t)

	var res endpoint.Static
	ep := func(a string) endpoint.Set {
		return endpoint.Set{Exists: true, Endpoints: []endpoint.Endpoint{{Addr: netip.MustParseAddrPort(a)}}}
	}
	res.Set(outboundVIP+":80", ep(echo))
	res.Set(outboundVIP+":3306", ep(fmt.Sprintf("127.0.0.1:%d", nsGreeterPort)))
	res.Set("[fd00:252::2]:80", ep(echo))
	res.Set("web.default:8080", ep(app))
	p := startProxy(t, func(c *Config) {
		c.OutboundAddr, c.InboundAddr = nsOutbound, nsInbound
		c.Resolver = &res
		c.OpaquePorts = DefaultConfig().OpaquePorts
		c.DetectTimeout = 3 * time.Second
		withHTTP(c)
	})

	t.Run("outbound original destination", func(t *testing.T) {
		got, err := roundTrip(t, outboundVIP+":80", "\x00opaque")
		if err != nil || got != "\x00opaque" {
			t.Fatalf("echo via %s:80: %q, %v", outboundVIP, got, err)
		}
		l := newTCPLabels(Outbound, outboundVIP+":80", false, "", nil)
		eventually(t, "authority label", func() bool { return metric(p.m.tcpClose.WithLabelValues(append(l[:], "")...)) == 1 })
	})
	t.Run("outbound opaque port does not stall", func(t *testing.T) {
		start := time.Now()
		c, err := net.Dial("tcp", outboundVIP+":3306")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		buf := make([]byte, len("220 ready\r\n"))
		if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "220 ready\r\n" {
			t.Fatalf("greeting %q, %v", buf, err)
		}
		if el := time.Since(start); el > time.Second {
			t.Errorf("greeting after %v: detection was not skipped for port 3306", el)
		}
	})
	t.Run("outbound HTTP by Host with the original port", func(t *testing.T) {
		// Host has no port: the HTTP layer takes 8080 from the original destination.
		got := get(t, httpClient(false), outboundVIP+":8080", "web.default", "/transparent")
		if !strings.HasSuffix(got, "/transparent") {
			t.Fatalf("response %q", got)
		}
	})
	t.Run("inbound to the application's original port", func(t *testing.T) {
		got, err := roundTrip(t, fmt.Sprintf("%s:%d", inboundVIP, nsAppPort), "\x00in")
		if err != nil || got != "app:\x00in" {
			t.Fatalf("inbound via %s:%d: %q, %v", inboundVIP, nsAppPort, got, err)
		}
	})
	t.Run("direct connection is not redirected, conntrack loaded", func(t *testing.T) {
		ln, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4zero, Port: 4143 + 1000})
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		// Not redirected: a direct connection to the listener.
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		s, err := ln.AcceptTCP()
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		// conntrack has an entry (the nat rules loaded it) whose original
		// destination is the listener itself.
		if dst, err := origdst.Get(s); !errors.Is(err, origdst.ErrNotRedirected) {
			t.Fatalf("direct connection: original destination %v, %v; want ErrNotRedirected", dst, err)
		}
	})
	if os.Getenv("MESHLET_PROXY_NETNS_IPV6") == "true" {
		t.Run("outbound IPv6 original destination", func(t *testing.T) {
			p6 := startProxy(t, func(c *Config) { c.OutboundAddr = nsOutbound6; c.Resolver = &res })
			got, err := roundTrip(t, "[fd00:252::2]:80", "\x00six")
			if err != nil || got != "\x00six" {
				t.Fatalf("echo via [fd00:252::2]:80: %q, %v", got, err)
			}
			l := newTCPLabels(Outbound, "[fd00:252::2]:80", false, "", nil)
			eventually(t, "IPv6 authority label", func() bool { return metric(p6.m.tcpClose.WithLabelValues(append(l[:], "")...)) == 1 })
		})
	} else {
		t.Log("IPv6 nat unavailable in the namespace: IPv6 part skipped")
	}
}
