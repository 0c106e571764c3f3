package httpproxy

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestMain fails the run when goroutines started by the proxy outlive the
// tests: every test closes what it started, so any left is a leak.
func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		if leaked := waitForLeaks(5 * time.Second); leaked != "" {
			fmt.Fprintf(os.Stderr, "leaked goroutines:\n%s\n", leaked)
			code = 1
		}
	}
	os.Exit(code)
}

func waitForLeaks(d time.Duration) string {
	deadline := time.Now().Add(d)
	for {
		leaked := proxyGoroutines()
		if leaked == "" || time.Now().After(deadline) {
			return leaked
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// proxyGoroutines returns the stacks of goroutines running code of this
// package outside its tests, or serving one of its connections.
func proxyGoroutines() string {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var out []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		ours := strings.Contains(g, "meshlet/proxy/httpproxy.") && !strings.Contains(g, "_test.go")
		// Connections of the proxy's transports and servers (and of the
		// tests' clients, which are closed at cleanup too).
		conn := strings.Contains(g, "net/http.(*persistConn).readLoop") ||
			strings.Contains(g, "meshlet/proxy/h2.") ||
			strings.Contains(g, "x/net/http2.(*ClientConn).readLoop") ||
			strings.Contains(g, "x/net/http2.(*serverConn).serve")
		if ours || conn {
			out = append(out, g)
		}
	}
	return strings.Join(out, "\n\n")
}
