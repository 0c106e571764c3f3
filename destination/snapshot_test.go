package destination

import (
	"net/netip"
	"testing"

	pb "github.com/meshlet/meshlet/destination/api/destinationpb"
	"github.com/meshlet/meshlet/proxy/endpoint"
)

func ep(addr string, zone string) *pb.Endpoint {
	return &pb.Endpoint{Address: tcpAddress(netip.MustParseAddrPort(addr)), Weight: 1, Zone: zone}
}

func snap(exists bool, eps ...*pb.Endpoint) snapshot {
	s := snapshot{exists: exists, eps: make(map[netip.AddrPort]*pb.Endpoint)}
	for _, e := range eps {
		s.eps[addrPortOf(e.Address)] = e
	}
	return s
}

// describe renders updates compactly: "+a,b" "-a" "none(true)".
func describe(ups []*pb.Update) []string {
	var out []string
	for _, u := range ups {
		switch u := u.Update.(type) {
		case *pb.Update_Add:
			s := "+"
			for i, e := range u.Add.Endpoints {
				if i > 0 {
					s += ","
				}
				s += addrPortOf(e.Address).String()
				if e.Zone != "" {
					s += "@" + e.Zone
				}
			}
			out = append(out, s)
		case *pb.Update_Remove:
			s := "-"
			for i, a := range u.Remove.Addresses {
				if i > 0 {
					s += ","
				}
				s += addrPortOf(a).String()
			}
			out = append(out, s)
		case *pb.Update_NoEndpoints:
			if u.NoEndpoints.Exists {
				out = append(out, "none(exists)")
			} else {
				out = append(out, "none(unknown)")
			}
		}
	}
	return out
}

func TestDiff(t *testing.T) {
	a, b, c := ep("10.0.0.1:80", ""), ep("10.0.0.2:80", ""), ep("10.0.0.3:80", "")
	tests := []struct {
		name     string
		old, cur snapshot
		want     []string
	}{
		{"unchanged", snap(true, a, b), snap(true, a, b), nil},
		{"unknown stays unknown", snap(false), snap(false), nil},
		{"first endpoints", snap(true), snap(true, b, a), []string{"+10.0.0.1:80,10.0.0.2:80"}},
		{"from unknown", snap(false), snap(true, a), []string{"+10.0.0.1:80"}},
		{"add one", snap(true, a), snap(true, a, b), []string{"+10.0.0.2:80"}},
		{"replace", snap(true, a, b), snap(true, b, c), []string{"+10.0.0.3:80", "-10.0.0.1:80"}},
		{"metadata change", snap(true, a, b), snap(true, ep("10.0.0.1:80", "z1"), b), []string{"+10.0.0.1:80@z1"}},
		{"all gone", snap(true, a), snap(true), []string{"none(exists)"}},
		{"deleted", snap(true, a), snap(false), []string{"none(unknown)"}},
		{"deleted while empty", snap(true), snap(false), []string{"none(unknown)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := describe(diff(tt.old, tt.cur))
			if len(got) != len(tt.want) {
				t.Fatalf("diff = %v, want %v", got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Fatalf("diff = %v, want %v", got, tt.want)
				}
			}
		})
	}
}

func TestFullState(t *testing.T) {
	if got := describe([]*pb.Update{fullState(snap(false))}); got[0] != "none(unknown)" {
		t.Fatal(got)
	}
	if got := describe([]*pb.Update{fullState(snap(true))}); got[0] != "none(exists)" {
		t.Fatal(got)
	}
	if got := describe([]*pb.Update{fullState(snap(true, ep("10.0.0.2:1", ""), ep("10.0.0.1:1", "")))}); got[0] != "+10.0.0.1:1,10.0.0.2:1" {
		t.Fatal(got)
	}
}

// The wire enum and the proxy's Protocol share numbers; toProto relies on it.
func TestProtocolNumbersMatch(t *testing.T) {
	pairs := map[endpoint.Protocol]pb.ProtocolHint{
		endpoint.ProtocolUnknown: pb.ProtocolHint_PROTOCOL_HINT_UNKNOWN,
		endpoint.ProtocolHTTP1:   pb.ProtocolHint_PROTOCOL_HINT_HTTP1,
		endpoint.ProtocolHTTP2:   pb.ProtocolHint_PROTOCOL_HINT_HTTP2,
		endpoint.ProtocolOpaque:  pb.ProtocolHint_PROTOCOL_HINT_OPAQUE,
	}
	for p, h := range pairs {
		if pb.ProtocolHint(p) != h {
			t.Errorf("%v = %d, wire %v = %d", p, p, h, h)
		}
	}
}

func TestSubscriberOverflow(t *testing.T) {
	s := newSubscriber(2)
	for i := range 2 {
		if !s.push(queued{}) {
			t.Fatalf("push %d refused", i)
		}
	}
	if s.push(queued{}) {
		t.Fatal("third push into a queue of 2 accepted")
	}
	select {
	case <-s.overflowed:
	default:
		t.Fatal("overflowed not closed")
	}
	<-s.ch
	if s.push(queued{}) {
		t.Fatal("push after overflow accepted")
	}
}
