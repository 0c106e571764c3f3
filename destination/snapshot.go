package destination

import (
	"net/netip"
	"slices"

	"google.golang.org/protobuf/proto"

	pb "github.com/meshlet/meshlet/destination/api/destinationpb"
)

// snapshot is the complete view of one topic (an authority as a backend
// understands it). Values are immutable once published: the same
// *pb.Endpoint is shared by every stream that sends it.
type snapshot struct {
	exists bool
	eps    map[netip.AddrPort]*pb.Endpoint
}

// fullState is the first message of a stream: every endpoint, or
// NoEndpoints.
func fullState(s snapshot) *pb.Update {
	if !s.exists || len(s.eps) == 0 {
		return noEndpoints(s.exists)
	}
	return addUpdate(sortedEndpoints(s.eps))
}

// diff returns the updates that take a client from old to cur. Adds come
// before removes so that a client applying them one at a time never sees a
// set emptier than either end.
func diff(old, cur snapshot) []*pb.Update {
	if !cur.exists || len(cur.eps) == 0 {
		if old.exists == cur.exists && len(old.eps) == 0 {
			return nil
		}
		return []*pb.Update{noEndpoints(cur.exists)}
	}
	if len(old.eps) == 0 {
		return []*pb.Update{fullState(cur)}
	}
	var added []*pb.Endpoint
	for a, e := range cur.eps {
		if oe, ok := old.eps[a]; !ok || !proto.Equal(e, oe) {
			added = append(added, e)
		}
	}
	var removed []netip.AddrPort
	for a := range old.eps {
		if _, ok := cur.eps[a]; !ok {
			removed = append(removed, a)
		}
	}
	var out []*pb.Update
	if len(added) > 0 {
		slices.SortFunc(added, compareEndpoints)
		out = append(out, addUpdate(added))
	}
	if len(removed) > 0 {
		slices.SortFunc(removed, netip.AddrPort.Compare)
		addrs := make([]*pb.TCPAddress, len(removed))
		for i, a := range removed {
			addrs[i] = tcpAddress(a)
		}
		out = append(out, &pb.Update{Update: &pb.Update_Remove{Remove: &pb.RemoveEndpoints{Addresses: addrs}}})
	}
	return out
}

func noEndpoints(exists bool) *pb.Update {
	return &pb.Update{Update: &pb.Update_NoEndpoints{NoEndpoints: &pb.NoEndpoints{Exists: exists}}}
}

func addUpdate(eps []*pb.Endpoint) *pb.Update {
	return &pb.Update{Update: &pb.Update_Add{Add: &pb.AddEndpoints{Endpoints: eps}}}
}

func sortedEndpoints(m map[netip.AddrPort]*pb.Endpoint) []*pb.Endpoint {
	out := make([]*pb.Endpoint, 0, len(m))
	for _, e := range m {
		out = append(out, e)
	}
	slices.SortFunc(out, compareEndpoints)
	return out
}

func compareEndpoints(a, b *pb.Endpoint) int {
	return addrPortOf(a.GetAddress()).Compare(addrPortOf(b.GetAddress()))
}

func tcpAddress(a netip.AddrPort) *pb.TCPAddress {
	return &pb.TCPAddress{Ip: a.Addr().AsSlice(), Port: uint32(a.Port())}
}

// addrPortOf converts a wire address; an invalid one gives the zero value.
func addrPortOf(t *pb.TCPAddress) netip.AddrPort {
	ip, ok := netip.AddrFromSlice(t.GetIp())
	if !ok || t.GetPort() > 65535 {
		return netip.AddrPort{}
	}
	return netip.AddrPortFrom(ip.Unmap(), uint16(t.GetPort()))
}
