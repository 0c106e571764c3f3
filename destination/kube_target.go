package destination

import (
	"fmt"
	"net/netip"
	"strings"
)

// kubeTopic is what a Kubernetes authority resolves to: a service port
// (optionally one hostname of a headless service), or an IP and port that
// the backend looks up as a ClusterIP or a pod IP. The zero value (with a
// port) stands for any name that cannot be a cluster name.
type kubeTopic struct {
	ip        netip.Addr
	namespace string
	service   string
	hostname  string
	port      uint16
}

// kubeTarget interprets a for the Kubernetes backend. Accepted names:
// svc, svc.ns, svc.ns.svc, svc.ns.svc.<domain> and host.svc.ns.svc.<domain>
// (a pod of a headless service). Other names are not cluster names and give
// the zero topic, which never exists.
func kubeTarget(a Authority, contextNS, clusterDomain string) (kubeTopic, error) {
	if a.Port == 0 {
		return kubeTopic{}, fmt.Errorf("%w %q: %w (want host:port)", ErrInvalidAuthority, a.String(), errNoPort)
	}
	if a.IP.IsValid() {
		return kubeTopic{ip: a.IP, port: a.Port}, nil
	}
	labels := strings.Split(a.Host, ".")
	if rest, ok := strings.CutSuffix(a.Host, "."+clusterDomain); ok && clusterDomain != "" {
		labels = strings.Split(rest, ".")
		switch {
		case len(labels) == 3 && labels[2] == "svc":
			return kubeTopic{namespace: labels[1], service: labels[0], port: a.Port}, nil
		case len(labels) == 4 && labels[3] == "svc":
			return kubeTopic{namespace: labels[2], service: labels[1], hostname: labels[0], port: a.Port}, nil
		}
		return kubeTopic{port: a.Port}, nil
	}
	switch {
	case len(labels) == 1:
		if contextNS == "" {
			return kubeTopic{}, fmt.Errorf("%w %q: a bare service name needs the caller's context_namespace", ErrInvalidAuthority, a.String())
		}
		return kubeTopic{namespace: contextNS, service: labels[0], port: a.Port}, nil
	case len(labels) == 2, len(labels) == 3 && labels[2] == "svc":
		return kubeTopic{namespace: labels[1], service: labels[0], port: a.Port}, nil
	}
	return kubeTopic{port: a.Port}, nil
}
