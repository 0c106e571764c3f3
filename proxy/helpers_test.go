package proxy

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/meshlet/meshlet/proxy/capture"
)

// testLogger discards logs unless MESHLET_TEST_LOG is set.
func testLogger() *slog.Logger {
	if os.Getenv("MESHLET_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// running is a proxy started by startProxy.
type running struct {
	*Proxy
	stop func() error // cancels Serve and returns its result
}

// startProxy runs a proxy on loopback ephemeral ports. mutate adjusts the
// defaults. The proxy is stopped at the end of the test if still running.
func startProxy(t testing.TB, mutate func(*Config)) *running {
	t.Helper()
	cfg := DefaultConfig()
	cfg.OutboundAddr, cfg.InboundAddr, cfg.AdminAddr = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	// Port 0 picks an IPv4 port; the same port on [::1] may belong to
	// another test. TestIPv6Listeners turns it on.
	cfg.IPv6 = false
	cfg.OpaquePorts = nil
	cfg.ConnectTimeout = 5 * time.Second
	cfg.ShutdownGrace = 5 * time.Second
	cfg.Logger = testLogger()
	cfg.NewHTTP = nil // transport tests see HTTP as bytes; http_test.go plugs the HTTP layer in
	if mutate != nil {
		mutate(&cfg)
	}
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Serve(ctx) }()
	stopped := false
	var result error
	r := &running{Proxy: p, stop: func() error {
		if !stopped {
			stopped = true
			cancel()
			select {
			case result = <-done:
			case <-time.After(30 * time.Second):
				t.Fatal("Serve did not return after cancel")
			}
		}
		return result
	}}
	t.Cleanup(func() { r.stop() })
	return r
}

// ports returns a capture.Ports holding the ports of the given addresses.
func ports(t *testing.T, addrs ...string) capture.Ports {
	t.Helper()
	var ps []string
	for _, a := range addrs {
		_, p, err := net.SplitHostPort(a)
		if err != nil {
			t.Fatal(err)
		}
		ps = append(ps, p)
	}
	out, err := capture.ParsePorts(strings.Join(ps, ","))
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// echoServer accepts connections and echoes every byte, half-closing its
// side when the client does. It returns its address.
func echoServer(t testing.TB) string {
	t.Helper()
	return serveTCP(t, func(c *net.TCPConn) {
		io.Copy(c, c)
		c.CloseWrite()
	})
}

// serveTCP runs handle for every connection to a new loopback listener.
func serveTCP(t testing.TB, handle func(*net.TCPConn)) string {
	t.Helper()
	ln, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.AcceptTCP()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				handle(c)
			}()
		}
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	return ln.Addr().String()
}

// roundTrip sends msg on a new connection to addr, half-closes, and
// returns everything read back until EOF.
func roundTrip(t *testing.T, addr, msg string) (string, error) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write([]byte(msg)); err != nil {
		return "", err
	}
	c.(*net.TCPConn).CloseWrite()
	b, err := io.ReadAll(c)
	return string(b), err
}

// refusedByProxy reports whether the proxy closed the connection without
// an answer: EOF or reset on the first read.
func refusedByProxy(t *testing.T, addr string) bool {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	c.Write([]byte("\x00hello"))
	n, err := c.Read(make([]byte, 16))
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatal("connection neither answered nor closed")
	}
	return n == 0 && err != nil
}

// metric reads a counter or gauge (one series of a vector).
func metric(c prometheus.Metric) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		panic(err)
	}
	if m.Counter != nil {
		return m.Counter.GetValue()
	}
	return m.Gauge.GetValue()
}

// scrape returns the admin endpoint's body and status for path.
func scrape(t *testing.T, p *Proxy, path string) (int, string) {
	t.Helper()
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := client.Get("http://" + p.AdminAddr().String() + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// eventually polls cond until it holds or 10s pass.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// checkNoLeaks fails the test if goroutines started during it are still
// running at its end (after every cleanup registered later has run).
func checkNoLeaks(t *testing.T) {
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(5 * time.Second)
		for runtime.NumGoroutine() > before {
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<20)
				n := runtime.Stack(buf, true)
				t.Errorf("goroutines: %d before, %d after\n%s", before, runtime.NumGoroutine(), buf[:n])
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
}

// closedAddr returns a loopback address where nothing listens.
// freeAddr returns a loopback address with a port free a moment ago, for a
// listener to take.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// closedAddr returns a loopback address that refuses connections.
func closedAddr(t *testing.T) string {
	t.Helper()
	// A socket bound to the port but not listening, kept until the test
	// ends: connects are refused, and no other test (or package, running
	// at the same time) can take the port meanwhile, as it could a port
	// merely closed.
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(sa.(*syscall.SockaddrInet4).Port))
}
