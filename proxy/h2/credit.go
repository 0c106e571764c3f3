package h2

// Receive credit, returned the same way by the server and the client: w
// is the connection's writer, conn its receive window, stream a stream's.

// returnConn gives n bytes of connection window back to the peer now (bytes
// dropped rather than read). Safe from the reading goroutine.
func (w *writer) returnConn(conn *recvFlow, n int64) {
	if n <= 0 {
		return
	}
	conn.win.Add(n)
	w.queueWindow(0, uint32(n))
	w.kickAsync()
}

// returnPadding gives back at once the window a DATA frame's padding used,
// on the connection and stream id (reading goroutine).
func (w *writer) returnPadding(conn, stream *recvFlow, id uint32, pad int64) {
	if pad <= 0 {
		return
	}
	stream.win.Add(pad)
	w.queueWindow(id, uint32(pad))
	w.returnConn(conn, pad)
}

// consumed records n body bytes of stream id read by the application, and
// returns credit once a quarter of a window is owed; the stream's own only
// while its peer may still send (open). Called by the reading application.
func (w *writer) consumed(conn, stream *recvFlow, id uint32, n int, open bool) {
	kick := false
	if u := conn.consumed(int64(n)); u > 0 {
		w.queueWindow(0, u)
		kick = true
	}
	if u := stream.consumed(int64(n)); u > 0 && open {
		w.queueWindow(id, u)
		kick = true
	}
	if kick {
		w.kick()
	}
}
