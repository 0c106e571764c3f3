package h2

import (
	"bytes"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"golang.org/x/net/http2/hpack"
)

// encoderPair runs our encoder and x/net's side by side, and decodes ours
// with x/net's decoder, as a peer would.
type encoderPair struct {
	ours   *encoder
	xbuf   bytes.Buffer
	theirs *hpack.Encoder
	dec    *hpack.Decoder
}

func newEncoderPair() *encoderPair {
	p := &encoderPair{ours: newEncoder(), dec: hpack.NewDecoder(4096, nil)}
	p.theirs = hpack.NewEncoder(&p.xbuf)
	return p
}

func (p *encoderPair) setLimit(v uint32) {
	p.ours.SetMaxDynamicTableSizeLimit(v)
	p.theirs.SetMaxDynamicTableSizeLimit(v)
	p.dec.SetAllowedMaxDynamicTableSize(v)
}

// block encodes fields with both encoders and fails the test unless the
// bytes are the same and decode back to fields.
func (p *encoderPair) block(t testing.TB, fields []hpack.HeaderField) {
	t.Helper()
	p.ours.buf = p.ours.buf[:0]
	p.xbuf.Reset()
	for _, f := range fields {
		p.ours.WriteField(f)
		if err := p.theirs.WriteField(f); err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(p.ours.buf, p.xbuf.Bytes()) {
		t.Fatalf("fields %q:\nours   %x\nx/net  %x", fields, p.ours.buf, p.xbuf.Bytes())
	}
	got, err := p.dec.DecodeFull(p.ours.buf)
	if err != nil {
		t.Fatalf("fields %q: x/net cannot decode our block %x: %v", fields, p.ours.buf, err)
	}
	if !slices.EqualFunc(got, fields, func(a, b hpack.HeaderField) bool { return a.Name == b.Name && a.Value == b.Value }) {
		t.Fatalf("decoded %q, want %q", got, fields)
	}
}

// fieldPool has what a proxy encodes: static entries whole and by name,
// custom names, values that change per request, a sensitive field, one
// larger than the table and one with bytes Huffman coding makes longer.
var fieldPool = func() []hpack.HeaderField {
	var pool []hpack.HeaderField
	for _, f := range staticTable {
		pool = append(pool, f, hpack.HeaderField{Name: f.Name, Value: f.Value + "x"})
	}
	return append(pool,
		hpack.HeaderField{Name: "x-request-id", Value: "7f3a"},
		hpack.HeaderField{Name: "x-request-id", Value: "9b21"},
		hpack.HeaderField{Name: "grpc-status", Value: "0"},
		hpack.HeaderField{Name: "grpc-message", Value: ""},
		hpack.HeaderField{Name: "content-type", Value: "application/grpc"},
		hpack.HeaderField{Name: "authorization", Value: "Bearer abc", Sensitive: true},
		hpack.HeaderField{Name: "x-custom", Value: "secret", Sensitive: true},
		hpack.HeaderField{Name: "x-big", Value: strings.Repeat("b", 5000)},
		hpack.HeaderField{Name: "x-mid", Value: strings.Repeat("m", 1500)},
		hpack.HeaderField{Name: "x-bin", Value: "\x00\xff\xfe\x01"},
	)
}()

func TestEncoderMatchesXNet(t *testing.T) {
	limits := []uint32{4096, 0, 64, 100, 1000, 8192, 4096}
	for seed := range uint64(40) {
		r := rand.New(rand.NewPCG(seed, 1))
		p := newEncoderPair()
		for range 200 {
			if r.IntN(20) == 0 {
				p.setLimit(limits[r.IntN(len(limits))])
			}
			fields := make([]hpack.HeaderField, r.IntN(12))
			for i := range fields {
				fields[i] = fieldPool[r.IntN(len(fieldPool))]
				if r.IntN(8) == 0 {
					fields[i].Value += string(rune('a' + r.IntN(26))) // a value not seen before
				}
			}
			p.block(t, fields)
		}
		if len(p.ours.ents)-p.ours.head == 0 && p.ours.maxSize >= 4096 {
			t.Errorf("seed %d: the dynamic table is empty after 200 blocks", seed)
		}
	}
}

func TestEncoderIndexes(t *testing.T) {
	e := newEncoder()
	for _, c := range []struct {
		f    hpack.HeaderField
		want []byte
	}{
		{hpack.HeaderField{Name: ":method", Value: "GET"}, []byte{0x82}},
		{hpack.HeaderField{Name: ":status", Value: "200"}, []byte{0x88}},
		{hpack.HeaderField{Name: "accept-encoding", Value: "gzip, deflate"}, []byte{0x90}},
		// Indexed name 58 (user-agent), added to the table as entry 62.
		{hpack.HeaderField{Name: "user-agent", Value: "a"}, []byte{0x40 | 58, 0x01, 'a'}},
		{hpack.HeaderField{Name: "user-agent", Value: "a"}, []byte{0x80 | 62}},
		// Never indexed, the name by index 23.
		{hpack.HeaderField{Name: "authorization", Value: "a", Sensitive: true}, []byte{0x10 | 15, 23 - 15, 0x01, 'a'}},
	} {
		e.buf = e.buf[:0]
		e.WriteField(c.f)
		if !bytes.Equal(e.buf, c.want) {
			t.Errorf("%q: got %x, want %x", c.f, e.buf, c.want)
		}
	}
	e.SetMaxDynamicTableSizeLimit(0)
	if e.size != 0 || e.head != len(e.ents) {
		t.Errorf("a zero limit left %d bytes in the table", e.size)
	}
	e.buf = e.buf[:0]
	e.WriteField(hpack.HeaderField{Name: ":method", Value: "GET"})
	if want := []byte{0x20, 0x82}; !bytes.Equal(e.buf, want) {
		t.Errorf("after a zero limit: got %x, want %x (size update first)", e.buf, want)
	}
}

// FuzzEncoder drives both encoders with the same fields and limits.
func FuzzEncoder(f *testing.F) {
	f.Add([]byte{0, 1, 2, 3, 200, 4, 5, 255, 6})
	f.Add([]byte("user-agent\x00curl\x01x-a\x00b"))
	f.Fuzz(func(t *testing.T, data []byte) {
		p := newEncoderPair()
		var fields []hpack.HeaderField
		for len(data) > 0 {
			b := data[0]
			data = data[1:]
			switch {
			case b == 255:
				p.block(t, fields)
				fields = fields[:0]
			case b >= 240:
				p.setLimit(uint32(b-240) * 512)
			case b >= 200 && len(data) > 1:
				// A field of fuzzed name and value.
				n := min(int(data[0])%16, len(data)-1)
				fields = append(fields, hpack.HeaderField{Name: string(data[1 : 1+n]), Value: string(data[1+n:][:min(len(data)-1-n, int(b-200))]), Sensitive: b%2 == 0})
				data = data[1+n+min(len(data)-1-n, int(b-200)):]
			default:
				fields = append(fields, fieldPool[int(b)%len(fieldPool)])
			}
		}
		p.block(t, fields)
	})
}

var benchFields = []hpack.HeaderField{
	{Name: ":status", Value: "200"},
	{Name: "content-type", Value: "application/grpc"},
	{Name: "date", Value: "Thu, 26 Nov 2026 07:30:00 GMT"},
	{Name: "content-length", Value: "1234"},
	{Name: "server", Value: "app"},
	{Name: "grpc-status", Value: "0"},
	{Name: "grpc-message", Value: ""},
	{Name: "x-request-id", Value: "7f3a9b21"},
}

func BenchmarkEncoder(b *testing.B) {
	b.Run("meshlet", func(b *testing.B) {
		e := newEncoder()
		b.ReportAllocs()
		for b.Loop() {
			e.buf = e.buf[:0]
			for _, f := range benchFields {
				e.WriteField(f)
			}
		}
	})
	b.Run("x/net", func(b *testing.B) {
		var buf bytes.Buffer
		e := hpack.NewEncoder(&buf)
		b.ReportAllocs()
		for b.Loop() {
			buf.Reset()
			for _, f := range benchFields {
				e.WriteField(f)
			}
		}
	})
}
