package httpproxy

import (
	"slices"
	"testing"
)

func TestFraming(t *testing.T) {
	cases := []struct {
		name      string
		in        string
		heads     int
		conflicts []int
		off       bool
	}{
		{"no body", "GET / HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.1\r\n\r\n", 2, nil, false},
		{"content-length body", "POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\n\r\n\r\n\rGET / HTTP/1.1\r\n\r\n", 2, nil, false},
		{"chunked with extension and trailers",
			"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5;x=y\r\n\r\n\r\n\r\r\n0\r\nX-T: 1\r\n\r\nGET / HTTP/1.1\r\n\r\n", 2, nil, false},
		{"bare LF", "GET / HTTP/1.1\nHost: a\n\nPOST / HTTP/1.1\nTransfer-Encoding: chunked\nContent-Length: 1\n\n0\n\n", 2, []int{1}, false},
		{"both framings", "POST / HTTP/1.1\r\nContent-Length: 4\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n", 1, []int{0}, false},
		{"upgrade stops following", "GET / HTTP/1.1\r\nUpgrade: x\r\n\r\nPOST / HTTP/1.1\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n", 1, nil, true},
		{"connect stops following", "CONNECT a:1 HTTP/1.1\r\n\r\n", 1, nil, true},
		{"bad chunk size", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 1, nil, true},
		{"bad chunk end", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nab\r\n", 1, nil, true},
		{"chunked below HTTP/1.1 stops following", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 1, nil, true},
		{"signed content-length stops following", "POST / HTTP/1.1\r\nContent-Length: +1\r\n\r\n", 1, nil, true},
		{"differing content-lengths", "POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 1, nil, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for _, split := range []int{0, 1, 2, 3, 7} { // 0: in one piece
				f := &framing{limit: 1 << 10}
				feedSplit(f, []byte(tc.in), split)
				if f.heads != tc.heads || !slices.Equal(f.conflicts, tc.conflicts) || (f.state == fsOff) != tc.off {
					t.Errorf("split %d: heads %d conflicts %v off %v; want %d %v %v",
						split, f.heads, f.conflicts, f.state == fsOff, tc.heads, tc.conflicts, tc.off)
				}
			}
		})
	}
}

func feedSplit(f *framing, b []byte, n int) {
	if n == 0 {
		f.feed(b)
		return
	}
	for len(b) > 0 {
		k := min(n, len(b))
		f.feed(b[:k])
		b = b[k:]
	}
}

// However the client's bytes are split into reads, the framing follower
// reaches the same conclusions.
func FuzzFraming(f *testing.F) {
	for _, s := range []string{
		"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
		"POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\nabcGET / HTTP/1.1\r\n\r\n",
		"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
		"GET / HTTP/1.1\nHost: a\n\n",
	} {
		f.Add([]byte(s), uint8(1))
	}
	f.Fuzz(func(t *testing.T, in []byte, split uint8) {
		whole := &framing{limit: 1 << 12}
		whole.feed(in)
		parts := &framing{limit: 1 << 12}
		feedSplit(parts, in, int(split%16)+1)
		if whole.heads != parts.heads || !slices.Equal(whole.conflicts, parts.conflicts) || whole.state != parts.state {
			t.Fatalf("whole: %d %v %d; split by %d: %d %v %d", whole.heads, whole.conflicts, whole.state,
				split%16+1, parts.heads, parts.conflicts, parts.state)
		}
	})
}
