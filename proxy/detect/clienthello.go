package detect

// ServerName returns the SNI host name of the TLS ClientHello that b starts
// with. ok is false unless b holds the whole first record and it is a
// well-formed ClientHello; name is "" when the hello has no server_name
// extension. A ClientHello split over several records (only seen with
// unusually large hellos) is reported as not ok.
//
// The inbound listener uses it to tell a mesh peer's mTLS (no SNI) from an
// application's own TLS (a host name), which it passes through untouched.
func ServerName(b []byte) (name string, ok bool) {
	if len(b) < 5 || b[0] != 22 || b[1] != 3 {
		return "", false
	}
	n := int(b[3])<<8 | int(b[4])
	if len(b) < 5+n {
		return "", false
	}
	r := reader(b[5 : 5+n])
	typ, ok1 := r.u8()
	hlen, ok2 := r.u24()
	if !ok1 || !ok2 || typ != 1 || hlen > len(r) {
		return "", false
	}
	r = r[:hlen]
	if !r.skip(2+32) || !r.skipVec8() || !r.skipVec16() || !r.skipVec8() {
		return "", false
	}
	if len(r) == 0 {
		return "", true // no extensions at all
	}
	exts, ok3 := r.vec16()
	if !ok3 {
		return "", false
	}
	for len(exts) > 0 {
		et, okT := exts.u16()
		data, okD := exts.vec16()
		if !okT || !okD {
			return "", false
		}
		if et != 0 { // server_name (RFC 6066 §3)
			continue
		}
		list, okL := data.vec16()
		if !okL {
			return "", false
		}
		for len(list) > 0 {
			nt, okN := list.u8()
			host, okH := list.vec16()
			if !okN || !okH {
				return "", false
			}
			if nt == 0 { // host_name
				return string(host), true
			}
		}
		return "", true
	}
	return "", true
}

// reader consumes a byte slice from the front, as TLS encodes its fields.
type reader []byte

func (r *reader) u8() (int, bool) {
	if len(*r) < 1 {
		return 0, false
	}
	v := int((*r)[0])
	*r = (*r)[1:]
	return v, true
}

func (r *reader) u16() (int, bool) {
	if len(*r) < 2 {
		return 0, false
	}
	v := int((*r)[0])<<8 | int((*r)[1])
	*r = (*r)[2:]
	return v, true
}

func (r *reader) u24() (int, bool) {
	if len(*r) < 3 {
		return 0, false
	}
	v := int((*r)[0])<<16 | int((*r)[1])<<8 | int((*r)[2])
	*r = (*r)[3:]
	return v, true
}

func (r *reader) skip(n int) bool {
	if len(*r) < n {
		return false
	}
	*r = (*r)[n:]
	return true
}

func (r *reader) vec16() (reader, bool) {
	n, ok := r.u16()
	if !ok || len(*r) < n {
		return nil, false
	}
	v := (*r)[:n]
	*r = (*r)[n:]
	return v, true
}

func (r *reader) skipVec8() bool {
	n, ok := r.u8()
	return ok && r.skip(n)
}

func (r *reader) skipVec16() bool {
	_, ok := r.vec16()
	return ok
}
