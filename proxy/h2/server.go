package h2

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"sync"
	"time"

	"golang.org/x/net/http2"
)

// serverConn is one served connection. Its reading goroutine (serve) owns
// the protocol state; handlers write their streams' frames themselves.
type serverConn struct {
	s        *Server
	c        net.Conn
	br       *bufio.Reader
	w        *writer
	fr       *http2.Framer
	hdec     *headerDecoder
	send     *sendFlow
	recv     recvFlow
	base     context.Context
	remote   string
	tlsState *tls.ConnectionState

	maxStreams    uint32
	streamWindow  int32
	settingsAcked bool // the client acknowledged our SETTINGS (reader goroutine)
	maxHeader     int

	mu       sync.Mutex
	streams  map[uint32]*serverStream
	maxID    uint32 // highest stream ID the client opened
	running  int    // handlers running, including those of reset streams
	refused  int    // streams refused in a row for the limit
	shutdown bool   // GOAWAY sent: no new streams
	closing  bool   // the last stream ended after GOAWAY: the connection closes
	idle     *time.Timer
	handlers sync.WaitGroup

	work        chan *serverStream // a new stream, to an idle worker (workers.go); closed as ServeConn returns
	idleWorkers int                // under mu
}

// errors that end streams; a handler sees them from its request body.
var (
	errClientReset  = errors.New("h2: stream reset by the client")
	errConnClosed   = errors.New("h2: connection closed")
	errHandlerDone  = errors.New("h2: request body read after the handler returned")
	errStreamClosed = errors.New("h2: stream closed")
	errClientClosed = errors.New("h2: client connection closed")
)

// connError ends the connection with GOAWAY(code); label is the metric's.
type connError struct {
	code  http2.ErrCode
	label string
}

func (e connError) Error() string { return "h2: connection error " + e.code.String() + ": " + e.label }

const prefaceTimeout = 10 * time.Second

func (s *Server) serveConn(ctx context.Context, c net.Conn) {
	sc := &serverConn{
		s: s, c: c, base: context.WithoutCancel(ctx), remote: c.RemoteAddr().String(),
		send: newSendFlow(), streams: make(map[uint32]*serverStream),
		work:       make(chan *serverStream),
		maxStreams: s.MaxConcurrentStreams, streamWindow: s.StreamWindow, maxHeader: s.MaxHeaderBytes,
	}
	if sc.maxStreams == 0 {
		sc.maxStreams = 250
	}
	if sc.streamWindow <= 0 {
		sc.streamWindow = 1 << 20
	}
	connWindow := s.ConnWindow
	if connWindow <= 0 {
		connWindow = 4 << 20
	}
	connWindow = max(connWindow, 65535) // SETTINGS cannot shrink the connection's window
	if sc.maxHeader <= 0 {
		sc.maxHeader = 64 << 10
	}
	// As net/http and x/net: the limit counts field bytes; HTTP/2 also
	// counts 32 bytes per field, which a typical request's ten fields get
	// as slack.
	sc.maxHeader += 10 * 32
	maxFrame := s.MaxReadFrameSize
	if maxFrame == 0 {
		maxFrame = 1 << 20
	}
	if tc, ok := c.(*tls.Conn); ok {
		st := tc.ConnectionState()
		sc.tlsState = &st
	}
	sc.recv.size = int64(connWindow)
	sc.recv.win.Store(int64(connWindow))
	sc.br = bufio.NewReaderSize(c, 16<<10)
	sc.w = newWriter(c, sc.br, 16<<10)
	sc.fr = sc.w.fr
	sc.hdec = newHeaderDecoder(sc.fr, uint32(sc.maxHeader))
	sc.fr.SetMaxReadFrameSize(maxFrame)
	sc.fr.SetReuseFrames()

	defer func() {
		sc.endAll(errConnClosed)
		c.Close()
		sc.handlers.Wait()
		close(sc.work) // idle workers exit; nothing spawns after the reader returned
		sc.mu.Lock()
		if sc.idle != nil {
			sc.idle.Stop()
		}
		sc.mu.Unlock()
	}()

	if !sc.readPreface() {
		return
	}
	sc.w.lock()
	sc.w.setErr(sc.fr.WriteSettings(
		http2.Setting{ID: http2.SettingMaxFrameSize, Val: maxFrame},
		http2.Setting{ID: http2.SettingMaxConcurrentStreams, Val: sc.maxStreams},
		http2.Setting{ID: http2.SettingMaxHeaderListSize, Val: uint32(sc.maxHeader)},
		http2.Setting{ID: http2.SettingInitialWindowSize, Val: uint32(sc.streamWindow)},
	))
	if connWindow > 65535 {
		sc.w.setErr(sc.fr.WriteWindowUpdate(0, uint32(connWindow-65535)))
	}
	if sc.w.unlock() != nil {
		return
	}
	if s.IdleTimeout > 0 {
		sc.idle = time.AfterFunc(s.IdleTimeout, sc.startShutdown)
	}
	stop := context.AfterFunc(ctx, sc.startShutdown)
	defer stop()
	sc.serve()
}

func (sc *serverConn) readPreface() bool {
	sc.c.SetReadDeadline(time.Now().Add(prefaceTimeout))
	buf := make([]byte, len(http2.ClientPreface))
	if _, err := io.ReadFull(sc.br, buf); err != nil || string(buf) != http2.ClientPreface {
		if err == nil {
			sc.count("bad_preface")
		}
		return false
	}
	sc.c.SetReadDeadline(time.Time{})
	return true
}

func (sc *serverConn) count(label string) {
	if sc.s.CountError != nil {
		sc.s.CountError(label)
	}
}

// serve reads frames until the connection ends.
func (sc *serverConn) serve() {
	for {
		f, err := sc.hdec.readFrame()
		if err != nil {
			var se http2.StreamError
			if errors.As(err, &se) {
				sc.mu.Lock()
				if se.StreamID > sc.maxID && se.StreamID%2 == 1 {
					sc.maxID = se.StreamID // the stream's ID is used up
				}
				sc.mu.Unlock()
				sc.streamError(se.StreamID, se.Code, "stream_"+se.Code.String())
				continue
			}
			var ce http2.ConnectionError
			switch {
			case errors.As(err, &ce):
				sc.connError(connError{http2.ErrCode(ce), "conn_" + http2.ErrCode(ce).String()})
			case errors.Is(err, http2.ErrFrameTooLarge):
				sc.connError(connError{http2.ErrCodeFrameSize, "frame_too_large"})
			}
			return
		}
		if err := sc.process(f); err != nil {
			sc.connError(err.(connError))
			return
		}
		if _, ok := f.(*headerBlock); ok {
			sc.hdec.release()
		}
	}
}

func (sc *serverConn) process(f http2.Frame) error {
	switch f := f.(type) {
	case *headerBlock:
		return sc.processHeaders(f)
	case *http2.DataFrame:
		return sc.processData(f)
	case *http2.RSTStreamFrame:
		st, err := sc.stream(f.StreamID, "rst")
		if st != nil {
			sc.resetByClient(st)
		}
		return err
	case *http2.WindowUpdateFrame:
		if f.StreamID == 0 {
			if !sc.send.add(nil, f.Increment) {
				return connError{http2.ErrCodeFlowControl, "window_overflow"}
			}
			return nil
		}
		st, err := sc.stream(f.StreamID, "window_update")
		if st != nil && !sc.send.add(&st.send, f.Increment) {
			sc.streamError(st.id, http2.ErrCodeFlowControl, "stream_window_overflow")
		}
		return err
	case *http2.SettingsFrame:
		return sc.processSettings(f)
	case *http2.PingFrame:
		if !f.IsAck() {
			if !sc.w.queuePing(f.Data) {
				return connError{http2.ErrCodeEnhanceYourCalm, "ping_flood"}
			}
			sc.w.kickAsync()
		}
		return nil
	case *http2.GoAwayFrame:
		sc.startShutdown()
		return nil
	case *http2.PushPromiseFrame:
		return connError{http2.ErrCodeProtocol, "push_promise"}
	case *http2.PriorityFrame:
		if f.StreamDep == f.StreamID {
			sc.streamError(f.StreamID, http2.ErrCodeProtocol, "self_dependency") // RFC 9113 §5.3.1
		}
	}
	return nil // PRIORITY_UPDATE, unknown types
}

// stream returns the open stream id. A frame on a stream the client never
// opened is a connection error (RFC 9113 §5.1, idle state); on a closed
// one it is ignored.
func (sc *serverConn) stream(id uint32, what string) (*serverStream, error) {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if st := sc.streams[id]; st != nil {
		return st, nil
	}
	if id > sc.maxID || id%2 == 0 {
		return nil, connError{http2.ErrCodeProtocol, what + "_idle_stream"}
	}
	return nil, nil
}

func (sc *serverConn) processSettings(f *http2.SettingsFrame) error {
	if f.IsAck() && !sc.settingsAcked {
		// The client now counts our SETTINGS_INITIAL_WINDOW_SIZE: the
		// streams it opened before had the default window, which it has
		// lowered by the difference (RFC 9113 §6.9.2), and so do we.
		sc.settingsAcked = true
		if d := int64(defaultWindow) - int64(sc.streamWindow); d > 0 {
			sc.mu.Lock()
			for _, st := range sc.streams {
				st.recv.win.Add(-d)
			}
			sc.mu.Unlock()
		}
	}
	return applySettings(f, sc.w, sc.send, sc.eachSend, nil)
}

// defaultWindow is HTTP/2's initial window size, before SETTINGS.
const defaultWindow = 65535

func (sc *serverConn) eachSend(f func(*streamSend)) {
	sc.mu.Lock()
	for _, st := range sc.streams {
		f(&st.send)
	}
	sc.mu.Unlock()
}

func (sc *serverConn) processData(f *http2.DataFrame) error {
	n := int64(f.Header().Length)
	if !sc.recv.use(n) {
		return connError{http2.ErrCodeFlowControl, "conn_window_exceeded"}
	}
	st, err := sc.stream(f.StreamID, "data")
	if err != nil {
		return err
	}
	if st == nil || st.remoteDone || st.body == nil {
		// Closed: the bytes are dropped and the connection's credit
		// returned at once. After END_STREAM it is a stream error.
		sc.returnConn(n)
		if st != nil {
			sc.streamError(st.id, http2.ErrCodeStreamClosed, "data_after_end_stream")
		}
		return nil
	}
	if !st.recv.use(n) {
		sc.returnConn(n)
		sc.streamError(st.id, http2.ErrCodeFlowControl, "stream_window_exceeded")
		return nil
	}
	data := f.Data()
	sc.w.returnPadding(&sc.recv, &st.recv, st.id, n-int64(len(data)))
	st.got += int64(len(data))
	if st.declLen >= 0 && (st.got > st.declLen || f.StreamEnded() && st.got != st.declLen) {
		sc.returnConn(int64(len(data)))
		sc.streamError(st.id, http2.ErrCodeProtocol, "content_length_mismatch")
		return nil
	}
	if len(data) > 0 && !st.body.write(data) {
		sc.returnConn(int64(len(data))) // the handler is no longer reading
	}
	if f.StreamEnded() {
		st.remoteDone = true
		st.remoteEnded.Store(true)
		st.body.closeWithError(io.EOF)
	}
	return nil
}

// returnConn gives n bytes of connection window back to the client now.
func (sc *serverConn) returnConn(n int64) { sc.w.returnConn(&sc.recv, n) }

// consumed is called as a handler reads n body bytes of st.
func (sc *serverConn) consumed(st *serverStream, n int) {
	sc.w.consumed(&sc.recv, &st.recv, st.id, n, !st.remoteDoneSeen())
}

// streamError resets stream id with code.
func (sc *serverConn) streamError(id uint32, code http2.ErrCode, label string) {
	sc.count(label)
	sc.mu.Lock()
	st := sc.streams[id]
	sc.mu.Unlock()
	if st != nil {
		sc.closeStream(st, errStreamReset(code))
	}
	sc.w.queueRST(id, code)
	sc.w.kickAsync()
}

// resetByClient ends st after the client's RST_STREAM.
func (sc *serverConn) resetByClient(st *serverStream) {
	sc.closeStream(st, errClientReset)
}

// closeStream removes st and ends its handler's request: context
// cancelled, body broken, writes refused.
func (sc *serverConn) closeStream(st *serverStream, err error) {
	sc.mu.Lock()
	if sc.streams[st.id] == st {
		delete(sc.streams, st.id)
	}
	sc.mu.Unlock()
	st.reset.Store(true)
	st.cancel(err)
	sc.send.end(&st.send, err)
	if st.body != nil {
		if n := st.body.breakWithError(err); n > 0 {
			sc.returnConn(int64(n))
		}
	}
	sc.streamGone()
}

// streamGone runs after a stream left the map: the idle timer starts, or a
// connection shutting down closes, once none is left.
func (sc *serverConn) streamGone() {
	sc.mu.Lock()
	empty := len(sc.streams) == 0
	closeNow := empty && sc.shutdown && !sc.closing
	if closeNow {
		sc.closing = true
	}
	if empty && sc.idle != nil && !sc.shutdown {
		sc.idle.Reset(sc.s.IdleTimeout)
	}
	sc.mu.Unlock()
	if closeNow {
		sc.finishShutdown()
	}
}

// startShutdown sends GOAWAY: the streams already opened finish, new
// ones are ignored, and the connection closes after the last one.
func (sc *serverConn) startShutdown() {
	sc.mu.Lock()
	if sc.shutdown {
		sc.mu.Unlock()
		return
	}
	sc.shutdown = true
	last := sc.maxID
	closeNow := len(sc.streams) == 0 && !sc.closing
	if closeNow {
		sc.closing = true
	}
	sc.mu.Unlock()
	sc.w.queueGoAway(last, http2.ErrCodeNo)
	sc.w.kickAsync()
	if closeNow {
		sc.finishShutdown()
	}
}

// lingerTimeout is how long a connection that sent its last frame waits
// for the client to close its side, so that closing ours does not reset
// what the client has not read yet.
const lingerTimeout = time.Second

// finalWriteTimeout bounds the wait to write a last GOAWAY to a peer that
// may not be reading.
const finalWriteTimeout = 250 * time.Millisecond

func (sc *serverConn) finishShutdown() {
	sc.w.kickAsync() // the GOAWAY, if the lock was busy when it was queued
	sc.mu.Lock()
	if sc.closing { // not if a stream the GOAWAY promised has started since
		sc.c.SetReadDeadline(time.Now().Add(lingerTimeout))
	}
	sc.mu.Unlock()
}

// connError sends GOAWAY with e's code and ends the connection. Unless the
// client is flooding it, the connection lingers a little (up to a second
// and 1 MiB of input), so that closing it does not reset the GOAWAY away
// before the client reads it.
func (sc *serverConn) connError(e connError) {
	sc.count(e.label)
	sc.mu.Lock()
	last := sc.maxID
	sc.shutdown, sc.closing = true, true
	sc.mu.Unlock()
	sc.w.queueGoAway(last, e.code)
	if e.code == http2.ErrCodeEnhanceYourCalm {
		// A flooding peer: the GOAWAY gets a short while to leave (it may
		// not be reading), then the connection closes.
		sc.w.flushFinal(finalWriteTimeout)
		sc.endAll(errConnClosed)
		return
	}
	sc.w.kickAsync()
	sc.endAll(errConnClosed)
	sc.c.SetReadDeadline(time.Now().Add(lingerTimeout))
	io.CopyN(io.Discard, sc.br, 1<<20)
}

// endAll ends every stream (the connection is gone).
func (sc *serverConn) endAll(err error) {
	sc.send.end(nil, err)
	sc.mu.Lock()
	all := make([]*serverStream, 0, len(sc.streams))
	for _, st := range sc.streams {
		all = append(all, st)
	}
	sc.mu.Unlock()
	for _, st := range all {
		sc.closeStream(st, err)
	}
}

type streamResetError http2.ErrCode

func (e streamResetError) Error() string {
	return "h2: stream reset: " + http2.ErrCode(e).String()
}

func errStreamReset(code http2.ErrCode) error { return streamResetError(code) }
