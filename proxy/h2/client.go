package h2

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http2"
)

// ClientConn is an HTTP/2 connection to a server, multiplexing requests.
// One goroutine reads its frames; RoundTrip writes a request's headers
// (and a body already complete) in the caller's goroutine.
type ClientConn struct {
	c            net.Conn
	cfg          ClientConfig
	w            *writer
	fr           *http2.Framer
	hdec         *headerDecoder
	send         *sendFlow
	recv         recvFlow
	streamWindow int32
	lastRead     atomic.Int64 // unix nanoseconds of the last read, for the health check

	mu        sync.Mutex
	streams   map[uint32]*clientStream
	nextID    uint32
	active    int    // streams started and not finished
	reserved  int    // streams promised by Reserve
	maxConc   uint32 // the server's SETTINGS_MAX_CONCURRENT_STREAMS
	gone      error  // why no new request may start
	idleSince time.Time
	health    *time.Timer
	readDone  chan struct{}
}

var errGoAway = fmt.Errorf("server sent GOAWAY: %w", ErrRefused)

func newClientConn(c net.Conn, cfg ClientConfig) (*ClientConn, error) {
	if cfg.StreamWindow <= 0 {
		cfg.StreamWindow = 4 << 20
	}
	if cfg.ConnWindow <= 0 {
		cfg.ConnWindow = 64 << 20
	}
	cfg.ConnWindow = max(cfg.ConnWindow, 65535) // SETTINGS cannot shrink the connection's window
	if cfg.MaxReadFrameSize == 0 {
		cfg.MaxReadFrameSize = 256 << 10
	}
	if cfg.MaxHeaderListSize == 0 {
		cfg.MaxHeaderListSize = 1 << 20
	}
	cc := &ClientConn{
		c: c, cfg: cfg, send: newSendFlow(), streamWindow: cfg.StreamWindow,
		streams: make(map[uint32]*clientStream), nextID: 1, maxConc: 100,
		idleSince: time.Now(), readDone: make(chan struct{}),
	}
	cc.recv.size = int64(cfg.ConnWindow)
	cc.recv.win.Store(int64(cfg.ConnWindow))
	var r io.Reader = c
	if cfg.ReadIdleTimeout > 0 {
		r = &timedReader{r: c, last: &cc.lastRead}
		cc.lastRead.Store(time.Now().UnixNano())
	}
	br := bufio.NewReaderSize(r, 16<<10)
	cc.w = newWriter(c, br, 16<<10)
	cc.fr = cc.w.fr
	cc.hdec = newHeaderDecoder(cc.fr, cfg.MaxHeaderListSize)
	cc.fr.SetMaxReadFrameSize(cfg.MaxReadFrameSize)
	cc.fr.SetReuseFrames()

	w := cc.w
	w.lock()
	w.bw.WriteString(http2.ClientPreface)
	w.setErr(cc.fr.WriteSettings(
		http2.Setting{ID: http2.SettingEnablePush, Val: 0},
		http2.Setting{ID: http2.SettingInitialWindowSize, Val: uint32(cfg.StreamWindow)},
		http2.Setting{ID: http2.SettingMaxFrameSize, Val: cfg.MaxReadFrameSize},
		http2.Setting{ID: http2.SettingMaxHeaderListSize, Val: cfg.MaxHeaderListSize},
	))
	if cfg.ConnWindow > 65535 {
		w.setErr(cc.fr.WriteWindowUpdate(0, uint32(cfg.ConnWindow-65535)))
	}
	if err := w.unlock(); err != nil {
		c.Close()
		return nil, err
	}
	go cc.readLoop()
	if cfg.ReadIdleTimeout > 0 {
		cc.mu.Lock()
		cc.health = time.AfterFunc(cfg.ReadIdleTimeout, cc.checkHealth)
		cc.mu.Unlock()
	}
	return cc, nil
}

type timedReader struct {
	r    io.Reader
	last *atomic.Int64
}

func (t *timedReader) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	if n > 0 {
		t.last.Store(time.Now().UnixNano())
	}
	return n, err
}

// checkHealth pings a connection the server has been silent on, and
// closes it when the ping goes unanswered.
func (cc *ClientConn) checkHealth() {
	idle := time.Since(time.Unix(0, cc.lastRead.Load()))
	if idle < cc.cfg.ReadIdleTimeout {
		cc.rearm(cc.cfg.ReadIdleTimeout - idle)
		return
	}
	sent := time.Now()
	wait := cc.cfg.PingTimeout
	if wait <= 0 {
		wait = 15 * time.Second
	}
	cc.mu.Lock()
	if cc.health != nil {
		cc.health = time.AfterFunc(wait, func() {
			if time.Unix(0, cc.lastRead.Load()).Before(sent) {
				cc.close(errors.New("h2: server did not answer a PING"))
				return
			}
			cc.checkHealth()
		})
	}
	cc.mu.Unlock()
	// Armed first: a writer stuck on a peer that stopped reading holds the
	// lock, and the timeout then closes the connection, which frees it.
	cc.w.lock()
	cc.w.setErr(cc.fr.WritePing(false, [8]byte{'m', 'e', 's', 'h', 'l', 'e', 't'}))
	cc.w.unlock()
}

func (cc *ClientConn) rearm(d time.Duration) {
	cc.mu.Lock()
	if cc.health != nil {
		cc.health.Reset(d)
	}
	cc.mu.Unlock()
}

func (cc *ClientConn) reserve() bool {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if cc.gone != nil || cc.active+cc.reserved >= int(cc.maxConc) || cc.nextID >= maxStreamID {
		return false
	}
	cc.reserved++
	return true
}

const maxStreamID = 1<<31 - 1

func (cc *ClientConn) idle() (time.Duration, bool) {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if cc.active > 0 || cc.reserved > 0 {
		return 0, cc.gone == nil
	}
	return time.Since(cc.idleSince), cc.gone == nil
}

// setGone marks the connection as taking no new request, once.
func (cc *ClientConn) setGone(err error) {
	cc.mu.Lock()
	first := cc.gone == nil
	if first {
		cc.gone = err
	}
	cc.mu.Unlock()
	if first && cc.cfg.OnGone != nil {
		cc.cfg.OnGone(cc)
	}
}

var errIdle = errors.New("h2: connection closed idle")

func (cc *ClientConn) closeIfIdleFor(d time.Duration) bool {
	cc.mu.Lock()
	idle := cc.gone == nil && cc.active == 0 && cc.reserved == 0 && time.Since(cc.idleSince) >= d
	if idle {
		cc.gone = errIdle // no Reserve succeeds from here on
	}
	cc.mu.Unlock()
	if idle {
		if cc.cfg.OnGone != nil {
			cc.cfg.OnGone(cc)
		}
		cc.close(errIdle)
	}
	return idle
}

func (cc *ClientConn) close(err error) error {
	cc.setGone(err)
	cc.mu.Lock()
	if cc.health != nil {
		cc.health.Stop()
		cc.health = nil
	}
	cc.mu.Unlock()
	return cc.c.Close()
}

// readLoop reads the server's frames until the connection fails.
func (cc *ClientConn) readLoop() {
	defer close(cc.readDone)
	var err error
	for {
		var f http2.Frame
		f, err = cc.hdec.readFrame()
		if err != nil {
			var se http2.StreamError
			if errors.As(err, &se) {
				cc.streamError(se.StreamID, se.Code, err)
				continue
			}
			var ce http2.ConnectionError
			if errors.As(err, &ce) {
				cc.goAway(http2.ErrCode(ce))
			}
			break
		}
		if err = cc.process(f); err != nil {
			if ce, ok := err.(connError); ok {
				cc.goAway(ce.code)
			}
			break
		}
		if _, ok := f.(*headerBlock); ok {
			cc.hdec.release()
		}
	}
	cc.close(fmt.Errorf("h2: connection lost: %w", err))
	cc.send.end(nil, errConnClosed)
	cc.mu.Lock()
	all := make([]*clientStream, 0, len(cc.streams))
	for _, cs := range cc.streams {
		all = append(all, cs)
	}
	cc.mu.Unlock()
	for _, cs := range all {
		cs.lost(fmt.Errorf("h2: connection lost: %w", err), false)
	}
}

// goAway tells the server why the connection ends (a protocol error of its).
// The reader calls it as it gives up on the connection: the GOAWAY is
// written before the connection closes.
func (cc *ClientConn) goAway(code http2.ErrCode) {
	cc.w.queueGoAway(0, code)
	cc.w.flushFinal(finalWriteTimeout)
}

func (cc *ClientConn) process(f http2.Frame) error {
	switch f := f.(type) {
	case *headerBlock:
		cs := cc.stream(f.StreamID)
		if cs == nil {
			return cc.unknownStream(f.StreamID)
		}
		cs.processHeaders(f)
	case *http2.DataFrame:
		return cc.processData(f)
	case *http2.RSTStreamFrame:
		if cs := cc.stream(f.StreamID); cs != nil {
			cs.resetByServer(f.ErrCode)
		}
	case *http2.WindowUpdateFrame:
		if f.StreamID == 0 {
			if !cc.send.add(nil, f.Increment) {
				return connError{http2.ErrCodeFlowControl, "window_overflow"}
			}
		} else if cs := cc.stream(f.StreamID); cs != nil && !cc.send.add(&cs.send, f.Increment) {
			cc.streamError(cs.id, http2.ErrCodeFlowControl, errStreamReset(http2.ErrCodeFlowControl))
		}
	case *http2.SettingsFrame:
		return cc.processSettings(f)
	case *http2.PingFrame:
		if !f.IsAck() {
			if !cc.w.queuePing(f.Data) {
				return connError{http2.ErrCodeEnhanceYourCalm, "ping_flood"}
			}
			cc.w.kickAsync()
		}
	case *http2.GoAwayFrame:
		cc.processGoAway(f)
	case *http2.PushPromiseFrame:
		return connError{http2.ErrCodeProtocol, "push_promise"}
	}
	return nil
}

func (cc *ClientConn) stream(id uint32) *clientStream {
	cc.mu.Lock()
	cs := cc.streams[id]
	cc.mu.Unlock()
	return cs
}

// unknownStream handles a frame on a stream that is not open: one this
// connection never opened is a protocol error; a closed one is ignored.
func (cc *ClientConn) unknownStream(id uint32) error {
	cc.mu.Lock()
	next := cc.nextID
	cc.mu.Unlock()
	if id%2 == 0 || id >= next {
		return connError{http2.ErrCodeProtocol, "frame_on_idle_stream"}
	}
	return nil
}

func (cc *ClientConn) processSettings(f *http2.SettingsFrame) error {
	return applySettings(f, cc.w, cc.send, cc.eachSend, func(v uint32) {
		cc.mu.Lock()
		cc.maxConc = v
		cc.mu.Unlock()
	})
}

func (cc *ClientConn) eachSend(f func(*streamSend)) {
	cc.mu.Lock()
	for _, cs := range cc.streams {
		f(&cs.send)
	}
	cc.mu.Unlock()
}

// processGoAway: streams above the last one the server will process fail
// as refused (they may go again elsewhere); the rest finish.
func (cc *ClientConn) processGoAway(f *http2.GoAwayFrame) {
	cc.setGone(errGoAway)
	var refused []*clientStream
	cc.mu.Lock()
	for id, cs := range cc.streams {
		if id > f.LastStreamID {
			refused = append(refused, cs)
		}
	}
	cc.mu.Unlock()
	for _, cs := range refused {
		cs.lost(errGoAway, true)
	}
	cc.closeIfIdle()
}

// closeIfIdle closes a connection that takes no new request once its
// last stream ended.
func (cc *ClientConn) closeIfIdle() {
	cc.mu.Lock()
	idle := cc.gone != nil && cc.active == 0
	cc.mu.Unlock()
	if idle {
		cc.c.Close()
	}
}

func (cc *ClientConn) processData(f *http2.DataFrame) error {
	n := int64(f.Header().Length)
	if !cc.recv.use(n) {
		return connError{http2.ErrCodeFlowControl, "conn_window_exceeded"}
	}
	cs := cc.stream(f.StreamID)
	if cs == nil {
		cc.returnConn(n)
		return cc.unknownStream(f.StreamID)
	}
	return cs.processData(f, n)
}

func (cc *ClientConn) returnConn(n int64) { cc.w.returnConn(&cc.recv, n) }

// streamError resets stream id with code and fails its request with err.
func (cc *ClientConn) streamError(id uint32, code http2.ErrCode, err error) {
	if cs := cc.stream(id); cs != nil {
		cs.fail(err, false)
	}
	cc.w.queueRST(id, code)
	cc.w.kickAsync()
}
