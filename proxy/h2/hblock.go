package h2

import (
	"errors"
	"fmt"
	"strings"

	"golang.org/x/net/http/httpguts"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// headerBlock is a header block read off the wire: a HEADERS frame, its
// CONTINUATIONs, and the fields decoded from them. The connection's reader
// reuses it, and its Fields, for the next block: what must outlive the
// frame's processing is copied out (headerOf copies the strings, which are
// immutable, not the slice).
type headerBlock struct {
	*http2.HeadersFrame
	Fields    []hpack.HeaderField
	Truncated bool // fields past the header list limit were dropped
	pseudo    int  // Fields[:pseudo] are the pseudo-header fields
}

func (b *headerBlock) PseudoFields() []hpack.HeaderField  { return b.Fields[:b.pseudo] }
func (b *headerBlock) RegularFields() []hpack.HeaderField { return b.Fields[b.pseudo:] }

// PseudoValue returns the value of the pseudo-header :name, or "".
func (b *headerBlock) PseudoValue(name string) string {
	for _, hf := range b.PseudoFields() {
		if hf.Name[1:] == name {
			return hf.Value
		}
	}
	return ""
}

// headerDecoder reads a connection's header blocks with the checks and
// limits of x/net's Framer.ReadMetaHeaders (RFC 9113 §8.2, §8.3), whose
// errors and codes it keeps, but without allocating per block: the block,
// its field slice and the decoder's emit function are the connection's.
type headerDecoder struct {
	fr  *http2.Framer
	dec *hpack.Decoder
	max uint32 // SETTINGS_MAX_HEADER_LIST_SIZE we advertised
	blk headerBlock

	// per block
	remain, trailerRemain uint32
	sawRegular            bool
	invalid               error
}

const stringSlack = 64 << 10

func newHeaderDecoder(fr *http2.Framer, max uint32) *headerDecoder {
	d := &headerDecoder{fr: fr, max: max}
	d.dec = hpack.NewDecoder(4096, d.emit)
	// A string up to 64 KiB past the limit is decoded, so that one field
	// over the limit is dropped by the size check (the block is truncated:
	// a server answers 431) rather than ending the connection; a longer
	// one is a COMPRESSION_ERROR, as in x/net, without being allocated.
	d.dec.SetMaxStringLength(int(max) + stringSlack)
	return d
}

var errPseudoAfterRegular = errors.New("pseudo header field after regular")

func (d *headerDecoder) emit(hf hpack.HeaderField) {
	if !httpguts.ValidHeaderFieldValue(hf.Value) {
		d.invalid = fmt.Errorf("invalid value of header field %q", hf.Name) // not the value: it may be secret
	}
	if strings.HasPrefix(hf.Name, ":") {
		if d.sawRegular {
			d.invalid = errPseudoAfterRegular
		}
	} else {
		d.sawRegular = true
		if !validWireName(hf.Name) {
			d.invalid = fmt.Errorf("invalid header field name %q", hf.Name)
		}
	}
	if d.invalid != nil {
		d.dec.SetEmitEnabled(false)
		return
	}
	// Trailer's names count as fields of their own, against a budget of
	// their own (as x/net does): the trailers they announce come later.
	remain, size := &d.remain, hf.Size()
	if hf.Name == "trailer" {
		n := uint32(strings.Count(hf.Value, ",") + 1)
		remain, size = &d.trailerRemain, uint32(len(hf.Value))-n+1+n*hpack.HeaderField{}.Size()
	}
	if size > *remain {
		d.dec.SetEmitEnabled(false)
		d.blk.Truncated = true
		d.remain, d.trailerRemain = 0, 0
		return
	}
	*remain -= size
	d.blk.Fields = append(d.blk.Fields, hf)
}

// validWireName reports a valid HTTP/2 field name: a token, in lower case.
func validWireName(v string) bool {
	if v == "" {
		return false
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c >= 0x80 || !httpguts.IsTokenRune(rune(c)) || 'A' <= c && c <= 'Z' {
			return false
		}
	}
	return true
}

// readFrame reads the next frame; a HEADERS frame comes back as the
// *headerBlock it starts, with its CONTINUATIONs read and decoded. The
// block is valid until the next call.
func (d *headerDecoder) readFrame() (http2.Frame, error) {
	if d.blk.HeadersFrame != nil {
		d.release() // a block that ended in an error: the loops release the others
	}
	fh, err := d.fr.ReadFrameHeader()
	if err != nil {
		return nil, err
	}
	f, err := d.fr.ReadFrameForHeader(fh)
	if err != nil {
		if _, ok := err.(http2.StreamError); ok && fh.Type == http2.FrameHeaders {
			// x/net refuses a HEADERS frame padded past its end as a stream
			// error, without decoding its block: the decoder's table would
			// then differ from the peer's. RFC 9113 §6.2 makes it a
			// connection error.
			return nil, http2.ConnectionError(http2.ErrCodeProtocol)
		}
		return nil, err
	}
	if hf, ok := f.(*http2.HeadersFrame); ok {
		b, err := d.read(hf)
		if err != nil {
			return nil, err
		}
		return b, nil
	}
	return f, nil
}

// maxKeptFields bounds the field slice kept for the next block: a peer's
// one huge block does not pin its size for the connection's life.
const maxKeptFields = 64

// release ends the processing of the last block: its strings are no longer
// held, and an oversized field slice is dropped.
func (d *headerDecoder) release() {
	b := &d.blk
	b.HeadersFrame = nil
	if cap(b.Fields) > maxKeptFields {
		b.Fields = nil
		return
	}
	clear(b.Fields[:cap(b.Fields)])
	b.Fields = b.Fields[:0]
}

func (d *headerDecoder) read(hf *http2.HeadersFrame) (*headerBlock, error) {
	b := &d.blk
	b.HeadersFrame, b.Fields, b.Truncated, b.pseudo = hf, b.Fields[:0], false, 0
	d.remain, d.trailerRemain, d.sawRegular, d.invalid = d.max, d.max, false, nil
	d.dec.SetEmitEnabled(true)
	frag, ended := hf.HeaderBlockFragment(), hf.HeadersEnded()
	for {
		// A fragment far past what may still be accepted is not decoded
		// only to be dropped, and nothing after an invalid field is
		// tracked: both end the connection (as in x/net).
		if int64(len(frag)) > 2*int64(d.remain+d.trailerRemain) || d.invalid != nil {
			d.dec.Close()
			return nil, http2.ConnectionError(http2.ErrCodeProtocol)
		}
		if _, err := d.dec.Write(frag); err != nil {
			d.dec.Close()
			return nil, http2.ConnectionError(http2.ErrCodeCompression)
		}
		if ended {
			break
		}
		f, err := d.fr.ReadFrame()
		if err != nil {
			d.dec.Close()
			return nil, err
		}
		cf := f.(*http2.ContinuationFrame) // the Framer checks the order
		frag, ended = cf.HeaderBlockFragment(), cf.HeadersEnded()
	}
	if err := d.dec.Close(); err != nil {
		return nil, http2.ConnectionError(http2.ErrCodeCompression)
	}
	if d.invalid != nil {
		return nil, http2.StreamError{StreamID: hf.StreamID, Code: http2.ErrCodeProtocol, Cause: d.invalid}
	}
	for b.pseudo < len(b.Fields) && strings.HasPrefix(b.Fields[b.pseudo].Name, ":") {
		b.pseudo++
	}
	if err := checkPseudos(b.PseudoFields()); err != nil {
		return nil, http2.StreamError{StreamID: hf.StreamID, Code: http2.ErrCodeProtocol, Cause: err}
	}
	return b, nil
}

// checkPseudos refuses unknown or repeated pseudo-header fields, and a mix
// of a request's and a response's.
func checkPseudos(pf []hpack.HeaderField) error {
	var isRequest, isResponse bool
	for i, hf := range pf {
		switch hf.Name {
		case ":method", ":path", ":scheme", ":authority", ":protocol":
			isRequest = true
		case ":status":
			isResponse = true
		default:
			return fmt.Errorf("invalid pseudo-header %q", hf.Name)
		}
		for _, prev := range pf[:i] {
			if hf.Name == prev.Name {
				return fmt.Errorf("duplicate pseudo-header %q", hf.Name)
			}
		}
	}
	if isRequest && isResponse {
		return errors.New("mix of request and response pseudo headers")
	}
	return nil
}
