package destination

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strings"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"go.yaml.in/yaml/v3"

	"github.com/meshlet/meshlet/proxy/endpoint"
)

// ErrInvalidFile is wrapped by every error about the file backend's YAML.
var ErrInvalidFile = errors.New("destination: invalid endpoints file")

// FileSpec is the file backend's YAML document (docs/destination.md shows an
// example). `meshctl dev` writes it; the destination re-reads it on change.
type FileSpec struct {
	// Services maps a service name (a DNS name, matched case-insensitively
	// against the authority's host) to its endpoints.
	Services map[string]FileService `yaml:"services"`
}

// FileService is one service of a FileSpec.
type FileService struct {
	// Port, when set, is the only port the name answers on (name:port);
	// 0 means any port, and the bare name.
	Port uint16 `yaml:"port,omitempty"`
	// Protocol is the hint for every endpoint that sets none: auto (the
	// default: the proxy detects), http1, http2 or opaque.
	Protocol string `yaml:"protocol,omitempty"`
	// Aliases are more authorities (host:port, e.g. a listen address such as
	// 127.0.0.1:7001) that resolve to this service.
	Aliases []string `yaml:"aliases,omitempty"`
	// Endpoints are the service's ready endpoints.
	Endpoints []FileEndpoint `yaml:"endpoints"`
}

// FileEndpoint is one endpoint of a FileService.
type FileEndpoint struct {
	// Address is ip:port (IPv6 in brackets). Required.
	Address string `yaml:"address"`
	// Identity is the endpoint's SPIFFE ID when it is meshed; empty means
	// plaintext.
	Identity string `yaml:"identity,omitempty"`
	// Protocol overrides the service's protocol for this endpoint.
	Protocol string `yaml:"protocol,omitempty"`
	// Zone is the endpoint's topology zone.
	Zone string `yaml:"zone,omitempty"`
	// Weight scales the endpoint's share of traffic; 0 means 1.
	Weight uint32 `yaml:"weight,omitempty"`
	// Labels are metric labels; "service" defaults to the service name.
	Labels map[string]string `yaml:"labels,omitempty"`
}

// fileTable is a validated FileSpec, ready for lookups.
type fileTable struct {
	byName  map[string]*fileEntry
	byAlias map[Authority]*fileEntry
	byAddr  map[netip.AddrPort]endpoint.Endpoint
}

type fileEntry struct {
	name string
	port uint16
	eps  []endpoint.Endpoint
}

// ParseFile decodes and validates the file backend's YAML. Errors wrap
// ErrInvalidFile and name the line at fault.
func ParseFile(data []byte) (*FileSpec, error) {
	_, spec, err := parseFileTable(data)
	return spec, err
}

func parseFileTable(data []byte) (*fileTable, *FileSpec, error) {
	var spec FileSpec
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&spec); err != nil && !errors.Is(err, io.EOF) {
		return nil, nil, fmt.Errorf("%w: %v", ErrInvalidFile, err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, nil, fmt.Errorf("%w: line %d: only one YAML document is allowed", ErrInvalidFile, extra.Line)
	}
	// A second pass keeps the nodes, only to say where a semantic error is.
	var root yaml.Node
	_ = yaml.Unmarshal(data, &root)
	t, err := buildTable(&spec, &root)
	if err != nil {
		return nil, nil, err
	}
	return t, &spec, nil
}

func buildTable(spec *FileSpec, root *yaml.Node) (*fileTable, error) {
	t := &fileTable{
		byName:  make(map[string]*fileEntry),
		byAlias: make(map[Authority]*fileEntry),
		byAddr:  make(map[netip.AddrPort]endpoint.Endpoint),
	}
	names := make([]string, 0, len(spec.Services))
	for n := range spec.Services {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, name := range names {
		svc := spec.Services[name]
		fail := func(line int, format string, args ...any) error {
			return fmt.Errorf("%w: line %d: service %q: %s", ErrInvalidFile, line, name, fmt.Sprintf(format, args...))
		}
		svcLine := lineOf(root, "services", name)
		host, err := checkDNSName(name)
		if err != nil {
			return nil, fail(svcLine, "bad name: %v", err)
		}
		if other, ok := t.byName[host]; ok {
			return nil, fail(svcLine, "same name as service %q", other.name)
		}
		proto, ok := endpoint.ParseProtocol(svc.Protocol)
		if !ok {
			return nil, fail(lineOf(root, "services", name, "protocol"), "protocol %q is not one of auto, http1, http2, opaque", svc.Protocol)
		}
		e := &fileEntry{name: name, port: svc.Port}
		t.byName[host] = e
		for i, alias := range svc.Aliases {
			a, err := ParseAuthority(alias)
			if err != nil || a.Port == 0 {
				if err == nil {
					err = errors.New("no port")
				}
				return nil, fail(lineOf(root, "services", name, "aliases", i), "alias %q: %v", alias, err)
			}
			if other, ok := t.byAlias[a]; ok {
				return nil, fail(lineOf(root, "services", name, "aliases", i), "alias %q is also an alias of service %q", alias, other.name)
			}
			t.byAlias[a] = e
		}
		for i, fe := range svc.Endpoints {
			ep, err := fileEndpoint(name, proto, fe)
			if err != nil {
				return nil, fail(endpointLine(root, name, i, err), "endpoint %d: %v", i+1, err)
			}
			if _, dup := t.byAddr[ep.Addr]; dup && slices.ContainsFunc(e.eps, func(o endpoint.Endpoint) bool { return o.Addr == ep.Addr }) {
				return nil, fail(lineOf(root, "services", name, "endpoints", i), "endpoint %d: address %s listed twice", i+1, ep.Addr)
			}
			e.eps = append(e.eps, ep)
			t.byAddr[ep.Addr] = ep
		}
	}
	return t, nil
}

// fieldError says which field of an endpoint is wrong, for the line number.
type fieldError struct {
	field string
	err   error
}

func (e *fieldError) Error() string { return e.field + ": " + e.err.Error() }

func fileEndpoint(service string, proto endpoint.Protocol, fe FileEndpoint) (endpoint.Endpoint, error) {
	addr, err := netip.ParseAddrPort(fe.Address)
	if err != nil || addr.Port() == 0 || addr.Addr().Zone() != "" {
		if err == nil {
			err = errors.New("want ip:port with a port from 1 to 65535")
		}
		return endpoint.Endpoint{}, &fieldError{"address", fmt.Errorf("%q: %v", fe.Address, err)}
	}
	if fe.Identity != "" {
		if _, err := spiffeid.FromString(fe.Identity); err != nil {
			return endpoint.Endpoint{}, &fieldError{"identity", fmt.Errorf("%q is not a SPIFFE ID: %v", fe.Identity, err)}
		}
	}
	if fe.Protocol != "" {
		p, ok := endpoint.ParseProtocol(fe.Protocol)
		if !ok {
			return endpoint.Endpoint{}, &fieldError{"protocol", fmt.Errorf("%q is not one of auto, http1, http2, opaque", fe.Protocol)}
		}
		proto = p
	}
	labels := map[string]string{"service": service}
	for k, v := range fe.Labels {
		if !validLabelName(k) {
			return endpoint.Endpoint{}, &fieldError{"labels", fmt.Errorf("%q is not a valid metric label name", k)}
		}
		labels[k] = v
	}
	return endpoint.Endpoint{
		Addr:     netip.AddrPortFrom(addr.Addr().Unmap(), addr.Port()),
		Weight:   fe.Weight,
		Identity: fe.Identity,
		Protocol: proto,
		Zone:     fe.Zone,
		Labels:   labels,
	}, nil
}

func validLabelName(s string) bool {
	if s == "" || strings.HasPrefix(s, "__") {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || i > 0 && c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

func endpointLine(root *yaml.Node, service string, i int, err error) int {
	var fe *fieldError
	if errors.As(err, &fe) {
		if l := lineOf(root, "services", service, "endpoints", i, fe.field); l > 0 {
			return l
		}
	}
	return lineOf(root, "services", service, "endpoints", i)
}

// lineOf follows path (map keys as strings, sequence indexes as ints) from
// the document root and returns the line of the last key or item reached,
// so an error points at the deepest part of the path that exists.
func lineOf(root *yaml.Node, path ...any) int {
	n := root
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	line := n.Line
	for _, p := range path {
		var next *yaml.Node
		switch p := p.(type) {
		case string:
			if n.Kind == yaml.MappingNode {
				for i := 0; i+1 < len(n.Content); i += 2 {
					if n.Content[i].Value == p {
						line, next = n.Content[i].Line, n.Content[i+1]
						break
					}
				}
			}
		case int:
			if n.Kind == yaml.SequenceNode && p >= 0 && p < len(n.Content) {
				next = n.Content[p]
				line = next.Line
			}
		}
		if next == nil {
			return line
		}
		n = next
	}
	return line
}
