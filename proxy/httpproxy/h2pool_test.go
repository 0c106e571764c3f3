package httpproxy

import (
	"context"
	"net"
	"testing"
	"time"
)

// A connection dialled after the pool closed is closed without the pool's
// lock: its OnGone (remove) takes that lock, and closing it under the lock
// used to leave the pool locked for good.
func TestH2PoolCloseDuringDial(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); c.Read(make([]byte, 1<<10)); c.Read(make([]byte, 1<<10)) }()
		}
	}()
	release := make(chan struct{})
	p := &h2Pool{dial: func(ctx context.Context, k poolKey) (net.Conn, error) {
		<-release
		return net.Dial("tcp", k.addr)
	}}
	errc := make(chan error, 1)
	go func() { _, err := p.get(context.Background(), poolKey{addr: ln.Addr().String()}); errc <- err }()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		p.mu.Lock()
		dialing := len(p.dialing)
		p.mu.Unlock()
		if dialing == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the dial did not start")
		}
	}
	p.close()
	close(release)
	select {
	case err := <-errc:
		if err != errPoolClosed {
			t.Errorf("get after close: %v, want %v", err, errPoolClosed)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("get did not return after the pool closed")
	}
	locked := make(chan struct{})
	go func() {
		p.mu.Lock()
		n := len(p.conns) // the pool's lock can be taken, and the late connection was not kept
		p.mu.Unlock()
		if n != 0 {
			t.Errorf("%d connections kept after close", n)
		}
		close(locked)
	}()
	select {
	case <-locked:
	case <-time.After(5 * time.Second):
		t.Fatal("the pool's lock is held for good")
	}
}
