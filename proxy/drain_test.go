package proxy

import (
	"io"
	"net"
	"net/http"
	"testing"
	"time"
)

// dialEstablished opens a connection through the proxy's inbound listener
// to an echo application and proves it works.
func dialEstablished(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	echoOnce(t, c, "\x00hello") // not a possible HTTP prefix: no detection wait
	return c
}

func echoOnce(t *testing.T, c net.Conn, msg string) {
	t.Helper()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte(msg)); err != nil {
		t.Fatalf("write: %v", err)
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil || string(got) != msg {
		t.Fatalf("echo: %q, %v", got, err)
	}
}

func TestGracefulDrain(t *testing.T) {
	checkNoLeaks(t)
	echo := echoServer(t)
	const grace = 1500 * time.Millisecond
	p := startProxy(t, func(c *Config) { c.InboundTarget = echo; c.ShutdownGrace = grace })
	conn := dialEstablished(t, p.InboundAddr().String())

	start := time.Now()
	served := make(chan error, 1)
	go func() { served <- p.stop() }()

	// Draining: not ready, listener closed, the open connection still works.
	eventually(t, "/ready to turn 503", func() bool { code, _ := scrape(t, p.Proxy, "/ready"); return code == http.StatusServiceUnavailable })
	eventually(t, "new connections refused", func() bool {
		c, err := net.DialTimeout("tcp", p.InboundAddr().String(), time.Second)
		if err == nil {
			c.Close()
		}
		return err != nil
	})
	echoOnce(t, conn, "still here")
	select {
	case err := <-served:
		t.Fatalf("Serve returned (%v) after %v, before the grace period with a connection open", err, time.Since(start))
	default:
	}

	// At the end of the grace period the connection is closed and Serve
	// returns nil.
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := conn.Read(make([]byte, 1)); err == nil {
		t.Fatal("read succeeded after the grace period")
	}
	if el := time.Since(start); el < grace-100*time.Millisecond {
		t.Errorf("connection closed after %v, before the grace period of %v", el, grace)
	}
	select {
	case err := <-served:
		if err != nil {
			t.Fatalf("Serve = %v, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after the grace period")
	}
	l := newTCPLabels(Inbound, echo, false, "", nil)
	if n := metric(p.m.tcpClose.WithLabelValues(append(l[:], "shutdown")...)); n != 1 {
		t.Errorf("tcp_close_total{error=shutdown} = %v, want 1", n)
	}
}

func TestDrainEndsWhenConnectionsFinish(t *testing.T) {
	checkNoLeaks(t)
	echo := echoServer(t)
	p := startProxy(t, func(c *Config) { c.InboundTarget = echo; c.ShutdownGrace = time.Minute })
	conn := dialEstablished(t, p.InboundAddr().String())
	served := make(chan error, 1)
	start := time.Now()
	go func() { served <- p.stop() }()
	eventually(t, "draining", func() bool { return p.draining.Load() })
	echoOnce(t, conn, "last words")
	conn.(*net.TCPConn).CloseWrite()
	io.ReadAll(conn)
	select {
	case err := <-served:
		if err != nil {
			t.Fatal(err)
		}
		if el := time.Since(start); el > 10*time.Second {
			t.Errorf("shutdown took %v", el)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Serve still draining after its last connection ended")
	}
}
