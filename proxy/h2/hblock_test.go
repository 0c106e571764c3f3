package h2

import (
	"bytes"
	"fmt"
	"testing"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// A block's fields are reused for the next block, but a huge one's slice
// is not kept for the connection's life, and no strings outlive release.
func TestHeaderDecoderRelease(t *testing.T) {
	var wire bytes.Buffer
	fr := http2.NewFramer(&wire, &wire)
	d := newHeaderDecoder(fr, 1<<20)
	var hbuf bytes.Buffer
	enc := hpack.NewEncoder(&hbuf)
	for _, n := range []int{8, 500, 3} {
		hbuf.Reset()
		enc.WriteField(hpack.HeaderField{Name: ":status", Value: "200"})
		for i := 0; i < n; i++ {
			enc.WriteField(hpack.HeaderField{Name: fmt.Sprintf("x-f%d", i), Value: "v"})
		}
		if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: hbuf.Bytes(), EndHeaders: true}); err != nil {
			t.Fatal(err)
		}
		f, err := d.readFrame()
		if err != nil {
			t.Fatal(err)
		}
		b := f.(*headerBlock)
		if len(b.PseudoFields()) != 1 || len(b.RegularFields()) != n || b.PseudoValue("status") != "200" {
			t.Fatalf("%d fields: decoded %d pseudo, %d regular", n, len(b.PseudoFields()), len(b.RegularFields()))
		}
		d.release()
		switch c := cap(d.blk.Fields); {
		case n+1 > maxKeptFields && c != 0:
			t.Errorf("after a block of %d fields, %d slots kept", n+1, c)
		case n+1 <= maxKeptFields && c == 0:
			t.Errorf("after a block of %d fields, the slice was not kept for reuse", n+1)
		}
		for _, hf := range d.blk.Fields[:cap(d.blk.Fields)] {
			if hf.Name != "" || hf.Value != "" {
				t.Fatalf("field %q kept after release", hf.Name)
			}
		}
		if d.blk.HeadersFrame != nil {
			t.Error("frame kept after release")
		}
	}
}
