package destination

import (
	"net/netip"
	"slices"
	"strings"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"

	pb "github.com/meshlet/meshlet/destination/api/destinationpb"
	"github.com/meshlet/meshlet/proxy/endpoint"
)

// Weight every Kubernetes endpoint gets; nothing in the cluster sets it yet.
const defaultWeight = 1

// compute is the Kubernetes backend's computeFunc: it reads the informer
// caches and never the API server.
func (k *KubeBackend) compute(t kubeTopic) (snapshot, []depKey) {
	switch {
	case t.ip.IsValid():
		return k.computeIP(t)
	case t.service == "":
		return snapshot{}, nil
	}
	return k.computeService(t.namespace, t.service, t.hostname, t.port, nil)
}

// computeIP resolves an IP: a ClusterIP means its service, a pod IP means
// that pod alone; anything else is unknown and the proxy connects directly.
func (k *KubeBackend) computeIP(t kubeTopic) (snapshot, []depKey) {
	ip := t.ip.String()
	deps := []depKey{depKey("ip/" + ip)}
	if objs, _ := k.services.GetIndexer().ByIndex(indexClusterIP, ip); len(objs) > 0 {
		// Two services never share a ClusterIP; sort anyway so a transient
		// overlap resolves the same way every time.
		svcs := make([]*corev1.Service, 0, len(objs))
		for _, o := range objs {
			svcs = append(svcs, o.(*corev1.Service))
		}
		slices.SortFunc(svcs, func(a, b *corev1.Service) int {
			return strings.Compare(a.Namespace+"/"+a.Name, b.Namespace+"/"+b.Name)
		})
		return k.computeService(svcs[0].Namespace, svcs[0].Name, "", t.port, deps)
	}
	objs, _ := k.pods.GetIndexer().ByIndex(indexPodIP, ip)
	if len(objs) == 0 {
		return snapshot{}, deps
	}
	pod := objs[0].(*corev1.Pod)
	deps = append(deps, podDep(pod.Namespace, pod.Name))
	zone := ""
	// A pod has no zone of its own; its EndpointSlice entries carry it.
	slicesOfPod, _ := k.slices.GetIndexer().ByIndex(indexSlicePod, pod.Namespace+"/"+pod.Name)
	for _, o := range slicesOfPod {
		s := o.(*discoveryv1.EndpointSlice)
		if name := s.Labels[discoveryv1.LabelServiceName]; name != "" {
			deps = append(deps, svcDep(s.Namespace, name))
		}
		for _, ep := range s.Endpoints {
			if ref := ep.TargetRef; ref != nil && ref.Kind == "Pod" && ref.Name == pod.Name && ep.Zone != nil {
				zone = *ep.Zone
			}
		}
	}
	addr := netip.AddrPortFrom(t.ip, t.port)
	e := k.translate(addr, endpointInfo{pod: pod, zone: zone, namespace: pod.Namespace, targetPort: t.port})
	return snapshot{exists: true, eps: map[netip.AddrPort]*pb.Endpoint{addr: e}}, deps
}

// computeService builds the ready endpoints of one port of a service.
//
// Readiness follows the EndpointSlice API: an endpoint is used when its
// ready condition is true or unset (nil means ready). Terminating endpoints
// are excluded — ready is false for them unless the Service publishes not
// ready addresses — except that, like kube-proxy, when a service has no
// ready endpoint at all, the terminating ones that are still serving are
// used, so connections drain instead of failing during a full rollout.
func (k *KubeBackend) computeService(ns, name, hostname string, port uint16, deps []depKey) (snapshot, []depKey) {
	deps = append(deps, svcDep(ns, name))
	obj, ok, _ := k.services.GetIndexer().GetByKey(ns + "/" + name)
	if !ok {
		return snapshot{}, deps
	}
	svc := obj.(*corev1.Service)
	if svc.Spec.Type == corev1.ServiceTypeExternalName {
		// Only DNS knows where it points: let the proxy connect by name.
		return snapshot{}, deps
	}
	var sp *corev1.ServicePort
	for i := range svc.Spec.Ports {
		p := &svc.Spec.Ports[i]
		if p.Port == int32(port) && (p.Protocol == "" || p.Protocol == corev1.ProtocolTCP) {
			sp = p
			break
		}
	}
	if sp == nil && len(svc.Spec.Ports) > 0 {
		// The service exists but not on this port: nothing listens there.
		return snapshot{}, deps
	}
	svcOpaque := k.portSetAnnotation(svc.Annotations, "service "+ns+"/"+name)
	opaque := svcOpaque.contains(port)
	var appProto *string
	if sp != nil {
		appProto = sp.AppProtocol
	}

	ready := make(map[netip.AddrPort]*pb.Endpoint)
	draining := make(map[netip.AddrPort]*pb.Endpoint)
	objs, _ := k.slices.GetIndexer().ByIndex(indexService, ns+"/"+name)
	for _, o := range objs {
		s := o.(*discoveryv1.EndpointSlice)
		if s.AddressType != discoveryv1.AddressTypeIPv4 && s.AddressType != discoveryv1.AddressTypeIPv6 {
			continue
		}
		target, sliceAppProto, ok := slicePort(s, sp, port)
		if !ok {
			continue
		}
		ap := appProto
		if sliceAppProto != nil {
			ap = sliceAppProto
		}
		for i := range s.Endpoints {
			ep := &s.Endpoints[i]
			if len(ep.Addresses) == 0 || hostname != "" && (ep.Hostname == nil || *ep.Hostname != hostname) {
				continue
			}
			// Only the first address has defined semantics (kube-proxy
			// ignores the others too).
			ip, err := netip.ParseAddr(ep.Addresses[0])
			if err != nil {
				continue
			}
			addr := netip.AddrPortFrom(ip.Unmap(), target)
			dst := ready
			switch c := ep.Conditions; {
			case c.Ready == nil || *c.Ready:
			case c.Terminating != nil && *c.Terminating && (c.Serving == nil || *c.Serving):
				dst = draining
			default:
				continue
			}
			if _, dup := ready[addr]; dup {
				continue
			}
			info := endpointInfo{service: name, namespace: ns, targetPort: target, opaque: opaque || isOpaqueAppProtocol(ap), appProto: ap}
			if ep.Zone != nil {
				info.zone = *ep.Zone
			}
			if ref := ep.TargetRef; ref != nil && ref.Kind == "Pod" {
				pns := refNamespace(ref, s.Namespace)
				deps = append(deps, podDep(pns, ref.Name))
				if po, ok, _ := k.pods.GetIndexer().GetByKey(pns + "/" + ref.Name); ok {
					info.pod = po.(*corev1.Pod)
				}
			}
			dst[addr] = k.translate(addr, info)
		}
	}
	if len(ready) == 0 {
		ready = draining
	}
	return snapshot{exists: true, eps: ready}, deps
}

// slicePort finds the port of slice s that serves service port sp: the one
// with the same name (the EndpointSlice controller names slice ports after
// service ports, and resolves named target ports per slice). A headless
// service without ports uses the authority's port.
func slicePort(s *discoveryv1.EndpointSlice, sp *corev1.ServicePort, port uint16) (uint16, *string, bool) {
	if sp == nil {
		return port, nil, true
	}
	for _, p := range s.Ports {
		name := ""
		if p.Name != nil {
			name = *p.Name
		}
		if name != sp.Name || p.Protocol != nil && *p.Protocol != corev1.ProtocolTCP {
			continue
		}
		if p.Port == nil || *p.Port <= 0 || *p.Port > 65535 {
			// An unset port means "all ports" to the API; the target port
			// is then the service's own if numeric.
			if sp.TargetPort.IntVal > 0 {
				return uint16(sp.TargetPort.IntVal), p.AppProtocol, true
			}
			return port, p.AppProtocol, true
		}
		return uint16(*p.Port), p.AppProtocol, true
	}
	return 0, nil, false
}

// endpointInfo is what the translation of one address knows.
type endpointInfo struct {
	pod        *corev1.Pod // nil for endpoints without a pod (user-managed slices)
	service    string      // "" when the authority was a pod IP
	namespace  string
	zone       string
	targetPort uint16
	opaque     bool
	appProto   *string
}

// translate turns one address and what is known about it into the wire
// endpoint: identity only for meshed pods, a protocol hint, metric labels.
func (k *KubeBackend) translate(addr netip.AddrPort, in endpointInfo) *pb.Endpoint {
	labels := map[string]string{"namespace": in.namespace}
	if in.service != "" {
		labels["service"] = in.service
	}
	proto := endpoint.ProtocolUnknown
	if in.appProto != nil && (*in.appProto == "kubernetes.io/h2c") {
		proto = endpoint.ProtocolHTTP2
	}
	identity := ""
	opaque := in.opaque
	if p := in.pod; p != nil {
		labels["pod"] = p.Name
		sa := p.Spec.ServiceAccountName
		if sa == "" {
			sa = "default"
		}
		labels["serviceaccount"] = sa
		if kind, name := workloadOf(p); kind != "" {
			labels[kind] = name
		}
		if meshed(p) {
			identity = k.identityOf(p, sa)
			proto = endpoint.ProtocolHTTP2
		}
		if !opaque {
			opaque = k.portSetAnnotation(p.Annotations, "pod "+p.Namespace+"/"+p.Name).contains(in.targetPort)
		}
	}
	if opaque {
		proto = endpoint.ProtocolOpaque
	}
	return &pb.Endpoint{
		Address:      tcpAddress(addr),
		Weight:       defaultWeight,
		Identity:     identity,
		Protocol:     pb.ProtocolHint(proto),
		Zone:         in.zone,
		MetricLabels: labels,
	}
}

// meshed reports whether a pod runs the meshlet proxy: the injector sets
// the proxy-version annotation; a manual injection at least names the
// container (as a regular or a native sidecar container).
func meshed(p *corev1.Pod) bool {
	if _, ok := p.Annotations[ProxyVersionAnnotation]; ok {
		return true
	}
	for _, c := range p.Spec.Containers {
		if c.Name == ProxyContainerName {
			return true
		}
	}
	for _, c := range p.Spec.InitContainers {
		if c.Name == ProxyContainerName {
			return true
		}
	}
	return false
}

// workloadOf names the pod's controlling workload as a metric label
// (kind in lower case, name). A ReplicaSet owned by a Deployment is named
// "<deployment>-<pod-template-hash>": the hash is stripped to name the
// Deployment without watching ReplicaSets.
func workloadOf(p *corev1.Pod) (string, string) {
	for _, ref := range p.OwnerReferences {
		if ref.Controller == nil || !*ref.Controller {
			continue
		}
		if ref.Kind == "ReplicaSet" {
			if h := p.Labels["pod-template-hash"]; h != "" {
				if dep, ok := strings.CutSuffix(ref.Name, "-"+h); ok && dep != "" {
					return "deployment", dep
				}
			}
		}
		return strings.ToLower(ref.Kind), ref.Name
	}
	return "", ""
}

// isOpaqueAppProtocol reports whether a port's appProtocol says the proxy
// must not look into the bytes.
func isOpaqueAppProtocol(p *string) bool {
	if p == nil {
		return false
	}
	switch strings.ToLower(*p) {
	case "tcp", "opaque", "meshlet.io/opaque":
		return true
	}
	return false
}

// identityOf is a meshed pod's SPIFFE ID: the injector's identity
// annotation when it names this pod's namespace and ServiceAccount (its
// trust domain may be another than ours), else one derived from them. A
// pod cannot claim another workload's identity this way, and could not
// present its certificate anyway.
func (k *KubeBackend) identityOf(p *corev1.Pod, sa string) string {
	path := "/ns/" + p.Namespace + "/sa/" + sa
	if v, ok := p.Annotations[IdentityAnnotation]; ok {
		id, err := spiffeid.FromString(v)
		if err == nil && id.Path() == path {
			return id.String()
		}
		k.m.badConfig.WithLabelValues("identity_annotation").Inc()
		k.cfg.Logger.Warn("destination: ignoring "+IdentityAnnotation+" annotation that does not name the pod's namespace and ServiceAccount",
			"pod", p.Namespace+"/"+p.Name, "value", v)
	}
	return "spiffe://" + k.cfg.TrustDomain + path
}

// portSetAnnotation parses the opaque-ports annotation; without one the
// default list applies. A bad value is counted and logged, and its valid
// items still apply.
func (k *KubeBackend) portSetAnnotation(ann map[string]string, where string) portSet {
	v, ok := ann[OpaquePortsAnnotation]
	if !ok {
		return k.opaquePorts
	}
	set, err := parsePortSet(v)
	if err != nil {
		k.m.badConfig.WithLabelValues("opaque_ports_annotation").Inc()
		k.cfg.Logger.Warn("destination: bad "+OpaquePortsAnnotation+" annotation", "object", where, "error", err)
	}
	return set
}

func svcDep(ns, name string) depKey { return depKey("svc/" + ns + "/" + name) }
func podDep(ns, name string) depKey { return depKey("pod/" + ns + "/" + name) }
