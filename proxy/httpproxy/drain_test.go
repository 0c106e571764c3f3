package httpproxy

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"testing"
	"time"
)

// When the drain limit passes, what is still running is cut: a request
// that never ends, and a WebSocket tunnel.
func TestDrainTimeoutCuts(t *testing.T) {
	cases := []struct {
		name  string
		proto Protocol
		start func(t *testing.T, addr string) (wait func() error)
	}{
		{"endless response/HTTP1", HTTP1, endlessResponse(HTTP1)},
		{"endless response/HTTP2", HTTP2, endlessResponse(HTTP2)},
		{"tunnel", HTTP1, func(t *testing.T, addr string) func() error {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { c.Close() })
			fmt.Fprintf(c, "GET /ws HTTP/1.1\r\nHost: %s\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n", webHost)
			br := bufio.NewReader(c)
			if res, err := http.ReadResponse(br, nil); err != nil || res.StatusCode != 101 {
				t.Fatalf("upgrade: %v %v", res, err)
			}
			return func() error {
				c.SetReadDeadline(time.Now().Add(10 * time.Second))
				_, err := io.Copy(io.Discard, br) // returns when the proxy cuts the tunnel
				return err
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := newApp(t)
			p, err := New(Config{DrainTimeout: 300 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			l := listen(t)
			defer l.Close()
			ctx, cancel := contextWithCancel()
			returned := make(chan struct{})
			go func() {
				c, err := l.Accept()
				if err != nil {
					return
				}
				p.ServeConn(ctx, c, ConnInfo{Direction: Inbound, Protocol: tc.proto, OrigDst: netip.MustParseAddrPort(a.addr)})
				close(returned)
			}()
			wait := tc.start(t, l.Addr().String())
			start := time.Now()
			cancel()
			if err := waitFor(returned, 5*time.Second); err != nil {
				t.Fatal("ServeConn did not return after the drain timeout")
			}
			if took := time.Since(start); took < 250*time.Millisecond {
				t.Errorf("cut after %v, before the drain timeout", took)
			}
			wait()
		})
	}
}

func endlessResponse(proto Protocol) func(t *testing.T, addr string) func() error {
	return func(t *testing.T, addr string) func() error {
		res, err := newClient(t, proto, addr).Get("http://" + webHost + "/wait?id=endless-" + proto.String())
		if err != nil {
			t.Fatal(err)
		}
		return func() error {
			defer res.Body.Close()
			_, err := io.Copy(io.Discard, res.Body)
			if err == nil {
				t.Error("endless response ended cleanly")
			}
			return err
		}
	}
}
