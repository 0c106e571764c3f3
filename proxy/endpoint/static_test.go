package endpoint

import (
	"net/netip"
	"testing"
)

func TestStaticWatch(t *testing.T) {
	var s Static
	var got []Set
	stop := s.Watch("web:80", func(set Set) { got = append(got, set) })
	if len(got) != 1 || got[0].Exists {
		t.Fatalf("first update = %+v, want one set with Exists=false", got)
	}
	ep := Endpoint{Addr: netip.MustParseAddrPort("10.0.0.1:8080")}
	s.Set("web:80", Set{Exists: true, Endpoints: []Endpoint{ep}})
	if len(got) != 2 || !got[1].Exists || got[1].Endpoints[0].Addr != ep.Addr {
		t.Fatalf("after Set: %+v", got)
	}
	s.Set("other:80", Set{Exists: true})
	if len(got) != 2 {
		t.Fatalf("update for another authority delivered: %+v", got)
	}
	stop()
	s.Set("web:80", Set{Exists: true})
	if len(got) != 2 {
		t.Fatalf("update after stop delivered: %+v", got)
	}
}

func TestProtocolRoundTrip(t *testing.T) {
	for _, p := range []Protocol{ProtocolUnknown, ProtocolHTTP1, ProtocolHTTP2, ProtocolOpaque} {
		q, ok := ParseProtocol(p.String())
		if !ok || q != p {
			t.Errorf("ParseProtocol(%q) = %v, %v; want %v", p.String(), q, ok, p)
		}
	}
	if _, ok := ParseProtocol("smtp"); ok {
		t.Error("ParseProtocol accepted an unknown name")
	}
}
