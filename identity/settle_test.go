package identity

import (
	"crypto/sha256"
	"testing"
)

func TestSettle(t *testing.T) {
	a, b, c := sha256.Sum256([]byte("a")), sha256.Sum256([]byte("b")), sha256.Sum256([]byte("c"))
	var s settle
	steps := []struct {
		sum    [sha256.Size]byte
		loaded bool
		want   bool
		why    string
	}{
		{a, false, true, "nothing loaded yet: try every read"},
		{a, false, true, "still nothing loaded (the last try failed): try again"},
		{a, true, false, "content in use unchanged"},
		{b, true, false, "new content seen once"},
		{c, true, false, "changed again before settling"},
		{c, true, true, "seen by two polls in a row"},
		{c, true, false, "already tried"},
	}
	for i, st := range steps {
		if got := s.ready(st.sum, st.loaded); got != st.want {
			t.Fatalf("step %d (%s): ready = %v, want %v", i, st.why, got, st.want)
		}
	}
}
