package h2_test

import (
	"bufio"
	"errors"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/meshlet/meshlet/proxy/h2"
)

// Abusive clients: the server must stay bounded and keep serving others.

// TestAbuseRapidReset opens and at once resets 1000 streams whose handlers
// are slow to return (CVE-2023-44487). Running handlers must stay within
// MaxConcurrentStreams, or the server must end the connection with GOAWAY
// ENHANCE_YOUR_CALM; either way it serves a well-behaved request after.
func TestAbuseRapidReset(t *testing.T) {
	checkGoroutines(t)
	const maxStreams = 20
	release := make(chan struct{})
	var running, peak, started atomic.Int64
	ts := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/ok" {
			io.WriteString(w, "ok")
			return
		}
		started.Add(1)
		n := running.Add(1)
		for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
		}
		defer running.Add(-1)
		<-r.Context().Done()
		select { // a handler slow to notice, like one waiting on an upstream
		case <-release:
		case <-time.After(10 * time.Second):
		}
	}), func(s *h2.Server) { s.MaxConcurrentStreams = maxStreams })
	defer func() {
		select {
		case <-release:
		default:
			close(release)
		}
	}()

	rc := dialRaw(t, ts.addr)
	writeErr := make(chan error, 1)
	go func() {
		bw := bufio.NewWriter(rc.c)
		fr := http2.NewFramer(bw, nil)
		var hb strings.Builder
		enc := hpack.NewEncoder(&hb)
		for i := 0; i < len(holdReq); i += 2 {
			enc.WriteField(hpack.HeaderField{Name: holdReq[i], Value: holdReq[i+1]})
		}
		block := []byte(hb.String()) // literals only: decodes the same every time
		var err error
		for i := range 1000 {
			id := uint32(2*i + 1)
			if err = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: block, EndStream: true, EndHeaders: true}); err != nil {
				break
			}
			if err = fr.WriteRSTStream(id, http2.ErrCodeCancel); err != nil {
				break
			}
			if i%50 == 49 {
				if err = bw.Flush(); err != nil {
					break
				}
			}
		}
		if err == nil {
			err = fr.WritePing(false, [8]byte{'d', 'o', 'n', 'e'})
		}
		if err == nil {
			err = bw.Flush()
		}
		writeErr <- err
	}()

	// How the connection ended: GOAWAY, closed (a GOAWAY sent just before
	// the close can be lost to the TCP reset), or still open (our PING came
	// back after all 1000 streams).
	var goAway http2.ErrCode
	end := "open"
read:
	for {
		switch f := rc.read().(type) {
		case nil:
			end = "closed"
			break read
		case *http2.GoAwayFrame:
			goAway, end = f.ErrCode, "GOAWAY"
			break read
		case *http2.PingFrame:
			if f.IsAck() && f.Data == [8]byte{'d', 'o', 'n', 'e'} {
				break read
			}
		}
	}
	<-writeErr
	p := peak.Load()
	t.Logf("handlers started %d, peak running %d, connection %s %v", started.Load(), p, end, goAway)
	calm := end == "closed" || end == "GOAWAY" && goAway == http2.ErrCodeEnhanceYourCalm
	if p > maxStreams && !calm {
		t.Errorf("%d handlers running at once after rapid resets, limit %d, and the connection goes on", p, maxStreams)
	}
	if end == "GOAWAY" && goAway != http2.ErrCodeEnhanceYourCalm {
		t.Errorf("GOAWAY %v, want ENHANCE_YOUR_CALM (or none)", goAway)
	}
	if end != "open" {
		ts.errs.waitCounted(t)
	}
	close(release)

	// The server still serves a well-behaved client.
	client, _ := xnetClient(t)
	resp, err := client.Get(ts.url("/ok"))
	if err != nil {
		t.Fatal(err)
	}
	if got := mustRead(t, resp); got != "ok" {
		t.Errorf("body %q", got)
	}
	rc.c.Close()
	for deadline := time.Now().Add(10 * time.Second); running.Load() > 0 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	if n := running.Load(); n != 0 {
		t.Errorf("%d handlers still running", n)
	}
}

// TestAbuseContinuationFlood sends a header block that never ends, each
// CONTINUATION carrying more fields (CVE-2024-27316 style). The server
// must end the connection instead of reading on; the flood is bounded.
func TestAbuseContinuationFlood(t *testing.T) {
	checkGoroutines(t)
	ts := startRawServer(t, nil) // MaxHeaderBytes default 64 KiB
	rc := dialRaw(t, ts.addr)
	var hb strings.Builder
	enc := hpack.NewEncoder(&hb)
	for i := range 32 {
		enc.WriteField(hpack.HeaderField{Name: "x-flood", Value: strings.Repeat(string(rune('a'+i%26)), 30), Sensitive: true})
	}
	frag := []byte(hb.String()) // ~1.1 KiB of never-indexed literals
	rc.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: rc.block(getReq...), EndHeaders: false})

	const total = 32 << 20
	var sent atomic.Int64
	done := make(chan error, 1)
	go func() {
		bw := bufio.NewWriterSize(rc.c, 64<<10)
		fr := http2.NewFramer(bw, nil)
		rc.c.SetWriteDeadline(time.Now().Add(20 * time.Second))
		var err error
		for sent.Load() < total && err == nil {
			err = fr.WriteContinuation(1, false, frag)
			sent.Add(int64(len(frag) + 9))
			if err == nil && bw.Buffered() > 32<<10 {
				err = bw.Flush()
			}
		}
		if err == nil {
			err = bw.Flush()
		}
		done <- err
	}()

	var ended string
read:
	for {
		rc.c.SetReadDeadline(time.Now().Add(15 * time.Second))
		f, err := rc.fr.ReadFrame()
		switch {
		case errors.Is(err, os.ErrDeadlineExceeded):
			break read
		case err != nil:
			ended = "closed"
			break read
		}
		if ga, ok := f.(*http2.GoAwayFrame); ok {
			ended = "GOAWAY " + ga.ErrCode.String()
			if ga.ErrCode == http2.ErrCodeNo {
				t.Errorf("GOAWAY NO_ERROR for a header flood, want an error code")
			}
			break read
		}
		if mh, ok := f.(*http2.MetaHeadersFrame); ok && mh.StreamID == 1 {
			t.Errorf("response %s to a header block that never ended", mh.PseudoValue("status"))
		}
	}
	rc.c.Close()
	werr := <-done
	t.Logf("outcome %q after %d bytes sent (write: %v)", ended, sent.Load(), werr)
	if ended == "" {
		t.Fatalf("server kept reading a %d MiB CONTINUATION flood past MaxHeaderBytes without ending the connection", sent.Load()>>20)
	}
	if werr == nil {
		t.Errorf("all %d MiB of the flood were accepted before the server ended the connection", total>>20)
	}
	ts.errs.waitCounted(t)
}

// TestAbusePingFlood: a client that sends PINGs and never reads. The
// acknowledgements owed are bounded (doc.go): the server must keep reading
// and end the connection, not stall reading behind its blocked writes.
func TestAbusePingFlood(t *testing.T) {
	checkGoroutines(t)
	ts := startRawServer(t, nil)
	rc := dialRaw(t, ts.addr)
	const pings = 1 << 20 // 17 MiB, more than the socket buffers hold
	bw := bufio.NewWriterSize(rc.c, 64<<10)
	fr := http2.NewFramer(bw, nil)
	rc.c.SetWriteDeadline(time.Now().Add(10 * time.Second))
	var err error
	var i int
	for i = 0; i < pings && err == nil; i++ {
		err = fr.WritePing(false, [8]byte{byte(i), byte(i >> 8), byte(i >> 16)})
	}
	if err == nil {
		err = bw.Flush()
	}
	switch {
	case err == nil:
		// All read: more acknowledgements are owed than the socket buffers
		// hold, so a bounded server ended the connection at some point.
		acks, ended := 0, ""
		for ended == "" {
			switch f := rc.read().(type) {
			case nil:
				ended = "closed"
			case *http2.GoAwayFrame:
				ended = "GOAWAY " + f.ErrCode.String()
				if f.ErrCode != http2.ErrCodeEnhanceYourCalm {
					t.Errorf("GOAWAY %v, want ENHANCE_YOUR_CALM", f.ErrCode)
				}
			case *http2.PingFrame:
				acks++
			}
		}
		t.Logf("all %d PINGs written; then %d acks and %s", pings, acks, ended)
		if acks == pings {
			t.Errorf("every PING was acknowledged to a client that did not read: the owed frames were not bounded")
		}
		ts.errs.waitCounted(t)
	case errors.Is(err, os.ErrDeadlineExceeded):
		t.Errorf("server stopped reading after %d PINGs instead of ending the connection", i)
	default:
		t.Logf("connection ended after %d PINGs: %v", i, err)
		ts.errs.waitCounted(t)
	}
}

// TestAbuseOthersServed: a connection flooding SETTINGS does not stop
// the server from serving a second one at the same time.
func TestAbuseOthersServed(t *testing.T) {
	ts := startRawServer(t, nil)
	rc := dialRaw(t, ts.addr)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		rc.c.SetWriteDeadline(time.Now().Add(5 * time.Second))
		bw := bufio.NewWriter(rc.c)
		fr := http2.NewFramer(bw, nil)
		for i := 0; i < 200000; i++ {
			if fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: uint32(65535 + i%100)}) != nil {
				return
			}
		}
		bw.Flush()
	}()
	client, _ := xnetClient(t)
	for range 20 {
		resp, err := client.Get(ts.url("/ok"))
		if err != nil {
			t.Fatal(err)
		}
		if got := mustRead(t, resp); got != "ok" {
			t.Errorf("body %q", got)
		}
	}
	rc.c.Close()
	wg.Wait()
}
