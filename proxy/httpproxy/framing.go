package httpproxy

import (
	"bytes"
	"sync"
)

// framing follows the message boundaries of the bytes an HTTP/1 client
// sends, only to find requests that carry both Content-Length and
// Transfer-Encoding. net/http accepts those (RFC 9112 section 6.3 lets the
// chunked framing win), removing Content-Length before the handler can see
// it; but such a request is most likely a smuggling attempt against some
// other hop, and the proxy answers it 400 instead of forwarding it.
//
// It agrees with net/http on well-formed input. On anything else (a bare
// parse doubt, a head over the limit, an upgrade or CONNECT, after which the
// bytes are no longer HTTP) it stops following for good and flags nothing
// more: net/http's own parsing, which is what forwards requests, is never
// overruled except by a positive finding.
type framing struct {
	mu        sync.Mutex
	state     framingState
	buf       []byte // the head or chunk line being accumulated
	remain    int64  // bytes left in a body or chunk
	heads     int    // request heads completed
	conflicts []int  // indexes of the heads with both framings
	limit     int    // longest head followed
}

type framingState uint8

const (
	fsHead framingState = iota
	fsBody
	fsChunkSize
	fsChunkData
	fsChunkCRLF
	fsTrailer
	fsOff
)

// maxChunkLine bounds a chunk-size or trailer line.
const maxChunkLine = 4096

// feed consumes bytes the client sent, in order.
func (f *framing) feed(b []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for len(b) > 0 && f.state != fsOff {
		switch f.state {
		case fsHead:
			b = f.feedHead(b)
		case fsBody, fsChunkData:
			n := int64(len(b))
			if n > f.remain {
				n = f.remain
			}
			f.remain -= n
			b = b[n:]
			if f.remain == 0 {
				if f.state == fsBody {
					f.state = fsHead
				} else {
					f.state = fsChunkCRLF
				}
			}
		case fsChunkCRLF:
			f.buf = append(f.buf, b[0])
			b = b[1:]
			if len(f.buf) == 2 {
				if string(f.buf) != "\r\n" {
					f.state = fsOff
				} else {
					f.buf = f.buf[:0]
					f.state = fsChunkSize
				}
			}
		case fsChunkSize, fsTrailer:
			i := bytes.IndexByte(b, '\n')
			if i < 0 {
				f.buf = append(f.buf, b...)
				b = nil
				if len(f.buf) > maxChunkLine {
					f.state = fsOff
				}
				continue
			}
			f.buf = append(f.buf, b[:i]...)
			b = b[i+1:]
			f.line(bytes.TrimSuffix(f.buf, cr))
			f.buf = f.buf[:0]
		}
	}
}

func (f *framing) line(line []byte) {
	if f.state == fsTrailer {
		if len(line) == 0 {
			f.state = fsHead
		}
		return
	}
	if i := bytes.IndexByte(line, ';'); i >= 0 {
		line = line[:i]
	}
	line = bytes.TrimRight(line, " \t")
	var n int64
	if len(line) == 0 || len(line) > 15 {
		f.state = fsOff
		return
	}
	for _, c := range line {
		switch {
		case '0' <= c && c <= '9':
			n = n<<4 | int64(c-'0')
		case 'a' <= c && c <= 'f':
			n = n<<4 | int64(c-'a'+10)
		case 'A' <= c && c <= 'F':
			n = n<<4 | int64(c-'A'+10)
		default:
			f.state = fsOff
			return
		}
	}
	if n == 0 {
		f.state = fsTrailer
		return
	}
	f.remain, f.state = n, fsChunkData
}

// feedHead accumulates a request head and, once complete, decides how its
// body is framed. It returns the bytes after the head.
func (f *framing) feedHead(b []byte) []byte {
	start := len(f.buf)
	f.buf = append(f.buf, b...)
	// The head ends at an empty line; net/http accepts bare LF line ends.
	from := max(start-2, 0)
	end := -1
	for i := from; i < len(f.buf); i++ {
		if f.buf[i] != '\n' {
			continue
		}
		if i+1 < len(f.buf) && f.buf[i+1] == '\n' {
			end = i + 2
			break
		}
		if i+2 < len(f.buf) && f.buf[i+1] == '\r' && f.buf[i+2] == '\n' {
			end = i + 3
			break
		}
	}
	if end < 0 {
		if len(f.buf) > f.limit {
			f.state = fsOff
		}
		return nil
	}
	rest := b[len(b)-(len(f.buf)-end):]
	f.head(f.buf[:end])
	f.buf = f.buf[:0]
	return rest
}

// head reads the framing headers of a complete request head. It works on
// the bytes in place: the follower costs no allocation per request.
func (f *framing) head(h []byte) {
	index := f.heads
	f.heads++
	first, rest, _ := bytes.Cut(h, nl)
	first = bytes.TrimSuffix(first, cr)
	if bytes.HasPrefix(first, []byte("CONNECT ")) {
		f.state = fsOff
		return
	}
	var cl, te []byte
	ncl, nte, clDiffer, upgrade := 0, 0, false, false
	for len(rest) > 0 {
		var line []byte
		line, rest, _ = bytes.Cut(rest, nl)
		name, value, ok := bytes.Cut(bytes.TrimSuffix(line, cr), colon)
		if !ok {
			continue
		}
		value = bytes.TrimSpace(value)
		switch {
		case equalFoldBytes(name, "Content-Length"):
			if ncl > 0 && !bytes.Equal(value, cl) {
				clDiffer = true
			}
			cl = value
			ncl++
		case equalFoldBytes(name, "Transfer-Encoding"):
			te = value
			nte++
		case equalFoldBytes(name, "Upgrade"):
			upgrade = true
		}
	}
	switch {
	case upgrade:
		f.state = fsOff // after a 101 the bytes are not HTTP
	case nte > 0:
		if ncl > 0 {
			f.conflicts = append(f.conflicts, index)
		}
		// net/http ignores Transfer-Encoding below HTTP/1.1 and frames by
		// Content-Length alone: not worth following further.
		if bytes.HasSuffix(first, []byte(" HTTP/1.1")) && nte == 1 && equalFoldBytes(te, "chunked") {
			f.state = fsChunkSize
		} else {
			f.state = fsOff // net/http answers 501 and closes
		}
	case ncl > 0:
		n, ok := parseLength(cl)
		if !ok || clDiffer {
			f.state = fsOff // net/http answers 400 and closes
		} else if n > 0 {
			f.remain, f.state = n, fsBody
		}
	}
}

var (
	nl    = []byte("\n")
	cr    = []byte("\r")
	colon = []byte(":")
)

// parseLength parses a Content-Length as net/http does: digits only.
func parseLength[T string | []byte](b T) (int64, bool) {
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	var n int64
	for i := range len(b) {
		c := b[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

func equalFoldBytes(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range len(b) {
		x, y := b[i], s[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// conflict reports whether request head number i (from 0) carried both
// Content-Length and Transfer-Encoding.
func (f *framing) conflict(i int) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for len(f.conflicts) > 0 && f.conflicts[0] < i {
		f.conflicts = f.conflicts[1:]
	}
	return len(f.conflicts) > 0 && f.conflicts[0] == i
}
