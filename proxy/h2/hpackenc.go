package h2

import "golang.org/x/net/http2/hpack"

// encoder is an HPACK encoder (RFC 7541) with x/net's indexing policy: its
// output is byte for byte what hpack.Encoder writes for the same fields
// and table size limits (hpackenc_test.go checks it), but a field costs no
// map lookup. The static table is found by name with one map lookup, and
// the dynamic table, at most a few dozen entries under the 4 KiB default,
// is searched newest first, as x/net's maps answer.
type encoder struct {
	buf []byte // the block being encoded; reset by the writer

	ents    []hpack.HeaderField // the dynamic table, oldest first, from head on
	head    int                 // entries before head are evicted
	size    uint32              // the table's size (RFC 7541 §4.1)
	maxSize uint32              // its current maximum
	limit   uint32              // the peer's SETTINGS_HEADER_TABLE_SIZE
	update  bool                // a size update must start the next block
}

func newEncoder() *encoder {
	return &encoder{maxSize: 4096, limit: 4096}
}

// SetMaxDynamicTableSizeLimit applies the peer's SETTINGS_HEADER_TABLE_SIZE:
// a table over it shrinks, and the next block says so.
func (e *encoder) SetMaxDynamicTableSizeLimit(v uint32) {
	e.limit = v
	if e.maxSize > v {
		e.update = true
		e.maxSize = v
		e.evict()
	}
}

// WriteField appends f to the block.
func (e *encoder) WriteField(f hpack.HeaderField) {
	if e.update {
		e.update = false
		e.buf = appendVarInt(e.buf, 5, 0x20, uint64(e.maxSize))
	}
	idx, full := e.search(f)
	if full {
		e.buf = appendVarInt(e.buf, 7, 0x80, idx)
		return
	}
	size := fieldSize(f)
	indexing := !f.Sensitive && size <= e.maxSize
	var kind byte // literal without indexing (RFC 7541 §6.2.2)
	prefix := byte(4)
	switch {
	case f.Sensitive:
		kind = 0x10 // never indexed (§6.2.3)
	case indexing:
		kind, prefix = 0x40, 6 // with incremental indexing (§6.2.1)
	}
	if idx == 0 {
		e.buf = append(e.buf, kind)
		e.buf = appendString(e.buf, f.Name)
	} else {
		e.buf = appendVarInt(e.buf, prefix, kind, idx)
	}
	e.buf = appendString(e.buf, f.Value)
	if indexing {
		e.add(f, size)
	}
}

// search returns the index of the field (full) or of its name: the
// static table first, then the newest dynamic entry. A sensitive field
// is never matched whole, so it is always sent as a literal.
func (e *encoder) search(f hpack.HeaderField) (idx uint64, full bool) {
	st := staticByName[f.Name]
	if st.last != 0 && !f.Sensitive {
		for i := st.first; i <= st.last; i++ {
			if staticTable[i-1].Value == f.Value {
				return uint64(i), true
			}
		}
	}
	nameIdx := uint64(st.last)
	live := e.ents[e.head:]
	for i := len(live) - 1; i >= 0; i-- {
		en := &live[i]
		if en.Name != f.Name {
			continue
		}
		at := uint64(len(staticTable) + len(live) - i)
		if !f.Sensitive && en.Value == f.Value {
			return at, true
		}
		if nameIdx == 0 {
			nameIdx = at
		}
		if f.Sensitive {
			break
		}
	}
	return nameIdx, false
}

func (e *encoder) add(f hpack.HeaderField, size uint32) {
	if e.head > 0 && len(e.ents) == cap(e.ents) {
		n := copy(e.ents, e.ents[e.head:])
		clear(e.ents[n:])
		e.ents, e.head = e.ents[:n], 0
	}
	e.ents = append(e.ents, f)
	e.size += size
	e.evict()
}

func (e *encoder) evict() {
	for e.size > e.maxSize && e.head < len(e.ents) {
		e.size -= fieldSize(e.ents[e.head])
		e.ents[e.head] = hpack.HeaderField{}
		e.head++
	}
}

// fieldSize is a field's size in the table: its name, its value and 32
// (RFC 7541 §4.1).
func fieldSize(f hpack.HeaderField) uint32 {
	return uint32(len(f.Name) + len(f.Value) + 32)
}

// appendVarInt appends i as an integer with an n-bit prefix (RFC 7541
// §5.1), the prefix's byte carrying the bits of kind above it.
func appendVarInt(dst []byte, n, kind byte, i uint64) []byte {
	k := uint64(1)<<n - 1
	if i < k {
		return append(dst, kind|byte(i))
	}
	dst = append(dst, kind|byte(k))
	for i -= k; i >= 128; i >>= 7 {
		dst = append(dst, byte(0x80|i&0x7f))
	}
	return append(dst, byte(i))
}

// appendString appends s Huffman-coded when that is shorter (§5.2).
func appendString(dst []byte, s string) []byte {
	if n := hpack.HuffmanEncodeLength(s); n < uint64(len(s)) {
		dst = appendVarInt(dst, 7, 0x80, n)
		return hpack.AppendHuffmanString(dst, s)
	}
	dst = appendVarInt(dst, 7, 0, uint64(len(s)))
	return append(dst, s...)
}

// staticTable is RFC 7541 Appendix A.
var staticTable = [...]hpack.HeaderField{
	{Name: ":authority"},
	{Name: ":method", Value: "GET"},
	{Name: ":method", Value: "POST"},
	{Name: ":path", Value: "/"},
	{Name: ":path", Value: "/index.html"},
	{Name: ":scheme", Value: "http"},
	{Name: ":scheme", Value: "https"},
	{Name: ":status", Value: "200"},
	{Name: ":status", Value: "204"},
	{Name: ":status", Value: "206"},
	{Name: ":status", Value: "304"},
	{Name: ":status", Value: "400"},
	{Name: ":status", Value: "404"},
	{Name: ":status", Value: "500"},
	{Name: "accept-charset"},
	{Name: "accept-encoding", Value: "gzip, deflate"},
	{Name: "accept-language"},
	{Name: "accept-ranges"},
	{Name: "accept"},
	{Name: "access-control-allow-origin"},
	{Name: "age"},
	{Name: "allow"},
	{Name: "authorization"},
	{Name: "cache-control"},
	{Name: "content-disposition"},
	{Name: "content-encoding"},
	{Name: "content-language"},
	{Name: "content-length"},
	{Name: "content-location"},
	{Name: "content-range"},
	{Name: "content-type"},
	{Name: "cookie"},
	{Name: "date"},
	{Name: "etag"},
	{Name: "expect"},
	{Name: "expires"},
	{Name: "from"},
	{Name: "host"},
	{Name: "if-match"},
	{Name: "if-modified-since"},
	{Name: "if-none-match"},
	{Name: "if-range"},
	{Name: "if-unmodified-since"},
	{Name: "last-modified"},
	{Name: "link"},
	{Name: "location"},
	{Name: "max-forwards"},
	{Name: "proxy-authenticate"},
	{Name: "proxy-authorization"},
	{Name: "range"},
	{Name: "referer"},
	{Name: "refresh"},
	{Name: "retry-after"},
	{Name: "server"},
	{Name: "set-cookie"},
	{Name: "strict-transport-security"},
	{Name: "transfer-encoding"},
	{Name: "user-agent"},
	{Name: "vary"},
	{Name: "via"},
	{Name: "www-authenticate"},
}

// staticByName gives, for each name of the static table, the indexes of
// its first and last entries. A field matching only by name uses the last,
// as x/net's encoder does.
var staticByName = func() map[string]struct{ first, last uint8 } {
	m := make(map[string]struct{ first, last uint8 }, len(staticTable))
	for i, f := range staticTable {
		r := m[f.Name]
		if r.first == 0 {
			r.first = uint8(i + 1)
		}
		r.last = uint8(i + 1)
		m[f.Name] = r
	}
	return m
}()
