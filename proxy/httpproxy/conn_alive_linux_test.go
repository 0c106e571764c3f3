package httpproxy

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/meshlet/meshlet/proxy/rawio"
)

// connAlive tells an idle connection from one its peer closed or wrote to,
// on the raw connections the upstream dialer returns.
func TestConnAlive(t *testing.T) {
	ln := listen(t)
	peers := make(chan net.Conn, 3)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			peers <- c
		}
	}()
	u := newUpstreams(&Config{ConnectTimeout: time.Second})
	dial := func() (net.Conn, net.Conn) {
		c, err := u.dialTCP(context.Background(), ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		if _, ok := c.(*rawio.Conn); !ok {
			t.Errorf("dialTCP returned a %T, not a *rawio.Conn", c)
		}
		p := <-peers
		t.Cleanup(func() { p.Close() })
		return c, p
	}
	idle, _ := dial()
	closed, p2 := dial()
	p2.Close()
	spoke, p3 := dial()
	p3.Write([]byte("HTTP/1.1 408 Request Timeout\r\n\r\n"))
	time.Sleep(50 * time.Millisecond)
	for _, c := range []struct {
		name string
		c    net.Conn
		want bool
	}{{"idle", idle, true}, {"closed by the peer", closed, false}, {"peer sent unasked bytes", spoke, false}} {
		if got := connAlive(c.c); got != c.want {
			t.Errorf("%s: connAlive = %v, want %v", c.name, got, c.want)
		}
	}
}
