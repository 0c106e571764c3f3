package h2

import (
	"bufio"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"io"
	"math/big"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
)

// writeCounter is a net.Conn that counts and discards writes.
type writeCounter struct {
	net.Conn
	writes atomic.Int32
}

func (c *writeCounter) Write(p []byte) (int, error) {
	c.writes.Add(1)
	return len(p), nil
}

// Streams that write while another writer has yielded before its flush
// share that flush: one syscall instead of one each. With one processor
// the writers run one after another, so without the yield each would flush
// its own frames.
func TestWritersShareAFlush(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	c := &writeCounter{}
	w := newWriter(c, bufio.NewReader(c), 64<<10)
	const streams = 16
	var wg sync.WaitGroup
	errs := make(chan error, streams)
	for i := 0; i < streams; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.lock()
			if err := w.writeData(uint32(2*i+1), true, []byte("hello")); err != nil {
				errs <- err
			}
			if err := w.unlock(); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if w.bw.Buffered() != 0 {
		t.Fatalf("%d bytes left unflushed", w.bw.Buffered())
	}
	if n := c.writes.Load(); n < 1 || n > streams/4 {
		t.Fatalf("%d streams made %d writes, want between 1 and %d", streams, n, streams/4)
	}
}

// flushFinal puts the last GOAWAY on the wire even while another writer
// has promised a flush (it yielded, or waits for the lock): the caller
// closes the connection next.
func TestFlushFinalWritesEverything(t *testing.T) {
	for _, state := range []string{"pending", "waiting"} {
		a, b := net.Pipe()
		w := newWriter(a, bufio.NewReader(a), 64<<10)
		got := make(chan int, 1)
		go func() {
			n, _ := io.Copy(io.Discard, b)
			got <- int(n)
		}()
		switch state {
		case "pending":
			w.pending = true // a writer in its yield, the lock free
		case "waiting":
			w.waiting.Add(1) // a writer about to take the lock
		}
		w.queueGoAway(0, http2.ErrCodeProtocol)
		w.flushFinal(time.Second)
		a.Close()
		if n := <-got; n != 17 { // a GOAWAY frame: 9 + 8 bytes
			t.Errorf("%s: %d bytes reached the peer, want the 17 of a GOAWAY", state, n)
		}
	}
}

// After a failed write on TLS, the connection closes at once instead of
// waiting (5 s) to send close_notify to the peer that does not read, so
// flushFinal keeps to its bound.
func TestFlushFinalBoundedOnTLS(t *testing.T) {
	ca := newTestCert(t)
	a, b := net.Pipe()
	srv := tls.Server(a, &tls.Config{Certificates: []tls.Certificate{ca}})
	cli := tls.Client(b, &tls.Config{InsecureSkipVerify: true})
	errc := make(chan error, 1)
	go func() { errc <- cli.Handshake() }()
	if err := srv.Handshake(); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	w := newWriter(srv, bufio.NewReader(srv), 64<<10)
	stuck := make(chan struct{})
	go func() { // a writer blocked on the peer, which never reads
		defer close(stuck)
		w.lock()
		w.writeData(1, false, make([]byte, 16<<10))
		w.setErr(w.bw.Flush())
		w.mu.Unlock()
	}()
	time.Sleep(50 * time.Millisecond)
	w.queueGoAway(0, http2.ErrCodeEnhanceYourCalm)
	start := time.Now()
	w.flushFinal(250 * time.Millisecond)
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("flushFinal took %v with a peer that does not read, want about 250ms", took)
	}
	<-stuck
}

func newTestCert(t *testing.T) tls.Certificate {
	t.Helper()
	pub, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}
