package discovery

import (
	"maps"
	"net/netip"
	"slices"

	pb "github.com/meshlet/meshlet/destination/api/destinationpb"
	"github.com/meshlet/meshlet/proxy/endpoint"
)

// state is one authority's endpoints as the stream has told them so far.
type state struct {
	exists bool
	eps    map[netip.AddrPort]endpoint.Endpoint
}

// apply folds one update into s; it returns how many entries were ignored
// for an invalid address.
func (s *state) apply(u *pb.Update) (invalid int) {
	switch u := u.GetUpdate().(type) {
	case *pb.Update_Add:
		s.exists = true
		for _, e := range u.Add.GetEndpoints() {
			ep, ok := fromProto(e)
			if !ok {
				invalid++
				continue
			}
			s.eps[ep.Addr] = ep
		}
	case *pb.Update_Remove:
		s.exists = true
		for _, a := range u.Remove.GetAddresses() {
			ap, ok := addrPort(a)
			if !ok {
				invalid++
				continue
			}
			delete(s.eps, ap)
		}
	case *pb.Update_NoEndpoints:
		s.exists = u.NoEndpoints.GetExists()
		clear(s.eps)
	default:
		invalid++
	}
	return invalid
}

// set returns a fresh, sorted endpoint.Set: receivers may keep it.
func (s *state) set() endpoint.Set {
	eps := slices.SortedFunc(maps.Values(s.eps), func(a, b endpoint.Endpoint) int { return a.Addr.Compare(b.Addr) })
	return endpoint.Set{Exists: s.exists, Endpoints: eps}
}

func fromProto(e *pb.Endpoint) (endpoint.Endpoint, bool) {
	ap, ok := addrPort(e.GetAddress())
	if !ok {
		return endpoint.Endpoint{}, false
	}
	proto := endpoint.ProtocolUnknown
	switch e.GetProtocol() {
	case pb.ProtocolHint_PROTOCOL_HINT_HTTP1:
		proto = endpoint.ProtocolHTTP1
	case pb.ProtocolHint_PROTOCOL_HINT_HTTP2:
		proto = endpoint.ProtocolHTTP2
	case pb.ProtocolHint_PROTOCOL_HINT_OPAQUE:
		proto = endpoint.ProtocolOpaque
	}
	return endpoint.Endpoint{
		Addr:     ap,
		Weight:   e.GetWeight(),
		Identity: e.GetIdentity(),
		Protocol: proto,
		Zone:     e.GetZone(),
		Labels:   e.GetMetricLabels(),
	}, true
}

func addrPort(a *pb.TCPAddress) (netip.AddrPort, bool) {
	ip, ok := netip.AddrFromSlice(a.GetIp())
	if !ok || a.GetPort() == 0 || a.GetPort() > 65535 {
		return netip.AddrPort{}, false
	}
	return netip.AddrPortFrom(ip.Unmap(), uint16(a.GetPort())), true
}

// equalSets compares two sets built by state.set (sorted by address).
func equalSets(a, b endpoint.Set) bool {
	return a.Exists == b.Exists && slices.EqualFunc(a.Endpoints, b.Endpoints, func(x, y endpoint.Endpoint) bool {
		return x.Addr == y.Addr && x.Weight == y.Weight && x.Identity == y.Identity &&
			x.Protocol == y.Protocol && x.Zone == y.Zone && maps.Equal(x.Labels, y.Labels)
	})
}
