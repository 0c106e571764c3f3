//go:build linux

package capture

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Test "pods" are network namespaces joined by a veth pair, with addresses
// routed only between them (no default route, nothing in the host
// namespace), named with a per-run prefix and removed on cleanup.

type pods struct {
	prefix     string
	a, b       string // netns names: a is the meshed client pod
	aIP4, bIP4 netip.Addr
	aIP6, bIP6 netip.Addr
	ipv6       bool // ip6tables nat works in the namespaces
}

func requireNetns(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to create network namespaces and program iptables")
	}
	for _, bin := range []string{"ip", "iptables", "iptables-save"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("needs %s (Debian packages iproute2, iptables; scripts/deps.sh installs them)", bin)
		}
	}
}

func run(t *testing.T, argv ...string) string {
	t.Helper()
	out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v: %s", strings.Join(argv, " "), err, out)
	}
	return string(out)
}

func newPods(t *testing.T) *pods {
	t.Helper()
	requireNetns(t)
	pruneStale(t)
	var rnd [1]byte
	_, _ = rand.Read(rnd[:])
	p := &pods{
		// The test's PID is in the name, so a later run can remove what a
		// killed run (a -timeout panic runs no cleanup) left behind.
		prefix: fmt.Sprintf("%s%06x%s", netnsPrefix, os.Getpid(), hex.EncodeToString(rnd[:])),
		aIP4:   netip.MustParseAddr("10.251.0.1"), bIP4: netip.MustParseAddr("10.251.0.2"),
		aIP6: netip.MustParseAddr("fd00:251::1"), bIP6: netip.MustParseAddr("fd00:251::2"),
	}
	p.a, p.b = p.prefix+"-a", p.prefix+"-b"
	t.Cleanup(func() { p.cleanup(t) })
	run(t, "ip", "netns", "add", p.a)
	run(t, "ip", "netns", "add", p.b)
	run(t, "ip", "link", "add", p.prefix+"a", "type", "veth", "peer", "name", p.prefix+"b")
	run(t, "ip", "link", "set", p.prefix+"a", "netns", p.a)
	run(t, "ip", "link", "set", p.prefix+"b", "netns", p.b)
	for _, x := range []struct {
		ns, link string
		ip4, ip6 netip.Addr
	}{{p.a, p.prefix + "a", p.aIP4, p.aIP6}, {p.b, p.prefix + "b", p.bIP4, p.bIP6}} {
		run(t, "ip", "-n", x.ns, "link", "set", "lo", "up")
		run(t, "ip", "-n", x.ns, "addr", "add", x.ip4.String()+"/24", "dev", x.link)
		run(t, "ip", "-n", x.ns, "addr", "add", x.ip6.String()+"/64", "dev", x.link, "nodad")
		run(t, "ip", "-n", x.ns, "link", "set", x.link, "up")
	}
	if _, err := exec.LookPath("ip6tables"); err == nil {
		err := exec.Command("ip", "netns", "exec", p.a, "ip6tables", "-w", "-t", "nat", "-S", "OUTPUT").Run()
		p.ipv6 = err == nil
	}
	return p
}

const netnsPrefix = "mlc"

// pruneStale deletes namespaces (and with them their links) of earlier test
// processes that no longer exist.
func pruneStale(t *testing.T) {
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		return
	}
	for _, line := range strings.Split(string(out), "\n") {
		name, _, _ := strings.Cut(strings.TrimSpace(line), " ")
		if !strings.HasPrefix(name, netnsPrefix) || len(name) < len(netnsPrefix)+6 {
			continue
		}
		var pid int
		if _, err := fmt.Sscanf(name[len(netnsPrefix):len(netnsPrefix)+6], "%x", &pid); err != nil || pid == os.Getpid() {
			continue
		}
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err == nil {
			continue // its test is still running
		}
		if err := exec.Command("ip", "netns", "del", name).Run(); err == nil {
			t.Logf("removed %s, left by test process %d", name, pid)
		}
	}
}

// cleanup removes everything and checks that nothing with the prefix is
// left, in namespaces or links.
func (p *pods) cleanup(t *testing.T) {
	for _, ns := range []string{p.a, p.b} {
		_ = exec.Command("ip", "netns", "del", ns).Run()
	}
	_ = exec.Command("ip", "link", "del", p.prefix+"a").Run()
	nss, _ := exec.Command("ip", "netns", "list").CombinedOutput()
	links, _ := exec.Command("ip", "-o", "link").CombinedOutput()
	if strings.Contains(string(nss), p.prefix) || strings.Contains(string(links), p.prefix) {
		t.Errorf("left behind after cleanup:\n%s\n%s", nss, links)
	}
}

// runner runs capture's iptables commands inside the namespace.
func (p *pods) runner(ns string) Runner {
	return func(ctx context.Context, argv []string) ([]byte, error) {
		return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns}, argv...)...).CombinedOutput()
	}
}

// inNetns runs fn on an OS thread that has joined the namespace ns, as fsuid
// uid when uid >= 0. Sockets created by fn stay in ns. The thread is never
// unlocked, so Go discards it (and its namespace and credentials) when fn
// returns.
func inNetns(ns string, uid int, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		f, err := os.Open("/var/run/netns/" + ns)
		if err != nil {
			errc <- err
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("setns %s: %w", ns, err)
			return
		}
		if uid >= 0 {
			// setfsuid changes this thread only (a raw syscall, unlike
			// syscall.Setuid which Go applies to every thread). The owner
			// match of iptables looks at the socket file's fsuid.
			syscall.RawSyscall(syscall.SYS_SETFSUID, uintptr(uid), 0, 0)
		}
		errc <- fn()
	}()
	return <-errc
}

// originalDst reads SO_ORIGINAL_DST (80) at SOL_IP or SOL_IPV6: where the
// connection was going before a REDIRECT.
func originalDst(c *net.TCPConn) (netip.AddrPort, error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return netip.AddrPort{}, err
	}
	v6 := c.LocalAddr().(*net.TCPAddr).IP.To4() == nil
	var buf [28]byte // sockaddr_in6, big enough for sockaddr_in
	var serr error
	err = raw.Control(func(fd uintptr) {
		level := uintptr(unix.SOL_IP)
		if v6 {
			level = unix.SOL_IPV6
		}
		n := uint32(len(buf))
		_, _, e := syscall.Syscall6(syscall.SYS_GETSOCKOPT, fd, level, 80, uintptr(unsafe.Pointer(&buf[0])), uintptr(unsafe.Pointer(&n)), 0)
		if e != 0 {
			serr = e
		}
	})
	if err != nil || serr != nil {
		return netip.AddrPort{}, errors.Join(err, serr)
	}
	port := binary.BigEndian.Uint16(buf[2:4])
	if v6 {
		return netip.AddrPortFrom(netip.AddrFrom16([16]byte(buf[8:24])), port), nil
	}
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte(buf[4:8])), port), nil
}

// server accepts on l until it is closed and answers each connection with
// one line: its label, and for a redirect target the original destination.
func server(wg *sync.WaitGroup, l net.Listener, label string, redirect bool) {
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			line := label
			if redirect {
				dst, err := originalDst(c.(*net.TCPConn))
				if err != nil {
					line += " error:" + err.Error()
				} else {
					line += " " + dst.String()
				}
			}
			fmt.Fprintln(c, line)
			c.Close()
		}
	}()
}

// listen opens network/addr listeners in ns and serves them; all are closed
// on cleanup.
func (p *pods) listen(t *testing.T, wg *sync.WaitGroup, ns string, specs ...listenSpec) {
	t.Helper()
	for _, s := range specs {
		var l net.Listener
		err := inNetns(ns, -1, func() (err error) {
			l, err = net.Listen(s.network, s.addr)
			return err
		})
		if err != nil {
			t.Fatalf("listen %s %s in %s: %v", s.network, s.addr, ns, err)
		}
		t.Cleanup(func() { l.Close() })
		server(wg, l, s.label, s.redirect)
	}
}

type listenSpec struct {
	network, addr, label string
	redirect             bool
}

// dial connects from ns (as fsuid uid, -1 for root) to addr and returns the
// line the listener answered.
func dial(ns string, uid int, addr netip.AddrPort) (string, error) {
	var conn net.Conn
	err := inNetns(ns, uid, func() (err error) {
		d := net.Dialer{Timeout: 3 * time.Second}
		conn, err = d.Dial("tcp", addr.String())
		return err
	})
	if err != nil {
		return "", err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(3 * time.Second))
	line, err := bufio.NewReader(conn).ReadString('\n')
	return strings.TrimSpace(line), err
}

func iptablesSave(t *testing.T, ns, binary string) string {
	t.Helper()
	out := run(t, "ip", "netns", "exec", ns, binary+"-save", "-t", "nat")
	var keep []string
	for _, l := range strings.Split(out, "\n") {
		if !strings.HasPrefix(l, "#") { // timestamps
			keep = append(keep, l)
		}
	}
	return strings.Join(keep, "\n")
}

func TestCaptureInNetworkNamespaces(t *testing.T) {
	p := newPods(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	cfg := DefaultConfig()
	cfg.SkipInboundPorts = Ports{{First: 9091, Last: 9091}}
	cfg.SkipOutboundPorts = Ports{{First: 9090, Last: 9090}}
	cfg.IPv6 = p.ipv6
	cfg.Run = p.runner(p.a)
	var log strings.Builder
	cfg.Log = &log
	if err := Apply(ctx, cfg); err != nil {
		t.Fatalf("Apply: %v\n%s", err, log.String())
	}
	if !p.ipv6 {
		t.Log("ip6tables nat not usable here: IPv6 cases skipped")
	}

	var wg sync.WaitGroup
	// Cleanups run last-in first-out: this one runs after the listeners'
	// Close, so every accept loop has ended when the test does.
	t.Cleanup(wg.Wait)
	type family struct {
		name       string
		tcp        string
		any, loop  string
		aIP, bIP   netip.Addr
		loopbackIP netip.Addr
	}
	fams := []family{{"ipv4", "tcp4", "0.0.0.0", "127.0.0.1", p.aIP4, p.bIP4, netip.MustParseAddr("127.0.0.1")}}
	if p.ipv6 {
		fams = append(fams, family{"ipv6", "tcp6", "[::]", "[::1]", p.aIP6, p.bIP6, netip.MustParseAddr("::1")})
	}
	for _, f := range fams {
		p.listen(t, &wg, p.a,
			listenSpec{f.tcp, f.loop + ":4140", "outbound", true},
			listenSpec{f.tcp, f.any + ":4143", "inbound", true},
			listenSpec{f.tcp, f.any + ":4191", "admin-a", false},
			listenSpec{f.tcp, f.any + ":8080", "app-a", false},
			listenSpec{f.tcp, f.any + ":9091", "app-a-9091", false},
		)
		p.listen(t, &wg, p.b,
			listenSpec{f.tcp, f.any + ":8080", "app-b", false},
			listenSpec{f.tcp, f.any + ":9090", "app-b-9090", false},
		)
	}

	for _, f := range fams {
		ap := func(a netip.Addr, port uint16) netip.AddrPort { return netip.AddrPortFrom(a, port) }
		cases := []struct {
			name string
			from string
			uid  int
			to   netip.AddrPort
			want string
		}{
			{"app outbound is captured with its original destination", p.a, -1, ap(f.bIP, 8080), "outbound " + ap(f.bIP, 8080).String()},
			{"proxy uid 2102 outbound is not captured", p.a, ProxyUIDForTest, ap(f.bIP, 8080), "app-b"},
			{"skip-outbound-ports are not captured", p.a, -1, ap(f.bIP, 9090), "app-b-9090"},
			{"inbound is captured with its original destination", p.b, -1, ap(f.aIP, 8080), "inbound " + ap(f.aIP, 8080).String()},
			{"skip-inbound-ports are not captured", p.b, -1, ap(f.aIP, 9091), "app-a-9091"},
			{"the proxy admin port is not captured", p.b, -1, ap(f.aIP, 4191), "admin-a"},
			{"app to its own pod IP goes straight to the app", p.a, -1, ap(f.aIP, 8080), "app-a"},
			{"app to loopback goes straight to the app", p.a, -1, ap(f.loopbackIP, 8080), "app-a"},
		}
		for _, tc := range cases {
			t.Run(f.name+"/"+tc.name, func(t *testing.T) {
				got, err := dial(tc.from, tc.uid, tc.to)
				if err != nil {
					t.Fatalf("dial %s from %s: %v", tc.to, tc.from, err)
				}
				if got != tc.want {
					t.Errorf("dial %s from %s (uid %d): answered %q, want %q", tc.to, tc.from, tc.uid, got, tc.want)
				}
			})
		}
	}

	t.Run("apply is idempotent", func(t *testing.T) {
		before := map[string]string{"iptables": iptablesSave(t, p.a, "iptables")}
		if p.ipv6 {
			before["ip6tables"] = iptablesSave(t, p.a, "ip6tables")
		}
		if err := Apply(ctx, cfg); err != nil {
			t.Fatalf("second Apply: %v", err)
		}
		for bin, want := range before {
			got := iptablesSave(t, p.a, bin)
			if got != want {
				t.Errorf("%s-save changed after a second Apply:\nbefore:\n%s\nafter:\n%s", bin, want, got)
			}
			for _, jump := range []string{"-A PREROUTING -j MESHLET_PREROUTING", "-A OUTPUT -j MESHLET_OUTPUT"} {
				if n := strings.Count(got, jump+"\n"); n != 1 {
					t.Errorf("%s: %q appears %d times, want 1", bin, jump, n)
				}
			}
		}
	})

	t.Run("meshlet-proxy init inside the namespace writes the same rules", func(t *testing.T) {
		// The init container's path: RunInit parses the flags the injector
		// writes (Config.Args) and runs iptables from PATH, in the pod's
		// namespace (a child process inherits the namespace of the thread
		// that starts it).
		want := iptablesSave(t, p.a, "iptables")
		if err := Remove(ctx, cfg); err != nil {
			t.Fatal(err)
		}
		var out strings.Builder
		err := inNetns(p.a, -1, func() error { return RunInit(ctx, cfg.Args(), &out, &out) })
		if err != nil {
			t.Fatalf("RunInit: %v\n%s", err, out.String())
		}
		if got := iptablesSave(t, p.a, "iptables"); got != want {
			t.Errorf("rules from RunInit differ from Apply's:\n%s\nwant:\n%s", got, want)
		}
		got, err := dial(p.a, -1, netip.AddrPortFrom(p.bIP4, 8080))
		if err != nil || got != "outbound "+netip.AddrPortFrom(p.bIP4, 8080).String() {
			t.Errorf("after RunInit: answered %q (%v)", got, err)
		}
	})

	t.Run("remove restores direct connections", func(t *testing.T) {
		if err := Remove(ctx, cfg); err != nil {
			t.Fatalf("Remove: %v", err)
		}
		if err := Remove(ctx, cfg); err != nil {
			t.Fatalf("second Remove: %v", err)
		}
		for _, bin := range []string{"iptables", "ip6tables"} {
			if bin == "ip6tables" && !p.ipv6 {
				continue
			}
			if s := iptablesSave(t, p.a, bin); strings.Contains(s, "MESHLET") {
				t.Errorf("%s still has meshlet rules after Remove:\n%s", bin, s)
			}
		}
		for _, f := range fams {
			got, err := dial(p.a, -1, netip.AddrPortFrom(f.bIP, 8080))
			if err != nil || got != "app-b" {
				t.Errorf("%s after Remove: answered %q (%v), want app-b", f.name, got, err)
			}
		}
	})
}

// ProxyUIDForTest is the proxy's UID as the dialing fsuid.
const ProxyUIDForTest = int(DefaultProxyUID)
