package h2

import (
	"bufio"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
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
