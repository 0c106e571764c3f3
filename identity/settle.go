package identity

import "crypto/sha256"

// settle decides when polled file content is taken into use. Before anything
// was loaded, every read is tried. Afterwards new content is used only once
// two polls in a row see it, so that a file caught halfway through a
// non-atomic write is never applied (a partial join tokens file would revoke
// the tokens it lacks; a partial issuer would be reported as bad), and
// content already tried, good or bad, is not tried again, so a bad file is
// reported once rather than on every poll. Only the polling goroutine uses it.
type settle struct {
	last, pending [sha256.Size]byte
}

// ready reports whether content with hash sum should be parsed and used
// now; loaded says whether earlier content is in use.
func (s *settle) ready(sum [sha256.Size]byte, loaded bool) bool {
	if loaded {
		if sum == s.last {
			return false
		}
		if sum != s.pending {
			s.pending = sum
			return false
		}
	}
	s.last = sum
	return true
}
