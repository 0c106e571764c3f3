package httpproxy

import (
	"fmt"
	"net/http"
	"slices"
	"testing"
)

// stripHopByHop drops every hop-by-hop field and those Connection names,
// keeps the rest, whether the header is smaller than the list of names
// (fields checked one by one) or not (names deleted one by one).
func TestStripHopByHop(t *testing.T) {
	for _, extra := range []int{0, 1, len(hopHeaders) + 2} {
		h := http.Header{}
		for _, k := range hopHeaders {
			h[k] = []string{"x"}
		}
		h[hdrConnection] = []string{"keep-alive, X-Private", "upgrade"}
		h[hdrUpgrade] = []string{"websocket"}
		h[hdrTE] = []string{"gzip, trailers"}
		h["X-Private"] = []string{"secret"}
		h["Content-Type"] = []string{"text/plain"}
		for i := 0; i < extra; i++ {
			h[fmt.Sprintf("X-Extra-%d", i)] = []string{"v"}
		}
		up, te := stripHopByHop(h)
		if !slices.Equal(up, []string{"websocket"}) || !te {
			t.Errorf("extra %d: upgrade %q, te trailers %v", extra, up, te)
		}
		for _, k := range append(hopHeaders[:], "X-Private") {
			if _, ok := h[k]; ok {
				t.Errorf("extra %d: %s kept", extra, k)
			}
		}
		if len(h) != 1+extra || h.Get("Content-Type") != "text/plain" {
			t.Errorf("extra %d: end-to-end fields lost: %v", extra, h)
		}
	}
	// The small-header path: only hop-by-hop fields go.
	h := http.Header{"Keep-Alive": {"1"}, "Accept": {"*/*"}}
	stripHopByHop(h)
	if len(h) != 1 || h.Get("Accept") != "*/*" {
		t.Errorf("small header: %v", h)
	}
}

// isHopHeader and hopHeaders name the same fields.
func TestIsHopHeaderMatchesList(t *testing.T) {
	for _, k := range hopHeaders {
		if !isHopHeader(k) {
			t.Errorf("isHopHeader(%q) = false", k)
		}
	}
	for _, k := range []string{"Content-Type", "Accept", "Host", "Grpc-Status", "Te-X", "Connections"} {
		if isHopHeader(k) {
			t.Errorf("isHopHeader(%q) = true", k)
		}
	}
}
