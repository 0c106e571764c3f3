// Package dev runs the whole mesh on one machine, with no Kubernetes: the
// identity service with a local CA, the destination service with a file
// backend, an inbound sidecar proxy in front of every service instance and an
// outbound proxy for every upstream, all as child processes on loopback.
// It is `meshctl dev`; docs/dev.md is the user's documentation.
package dev

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"regexp"
	"sort"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"go.yaml.in/yaml/v3"

	"github.com/meshlet/meshlet/proxy/endpoint"
)

// DefaultTrustDomain is used when the file names none.
const DefaultTrustDomain = "meshlet.local"

// Config is a parsed and validated mesh file (docs/dev.md).
type Config struct {
	// TrustDomain of every SPIFFE ID in the local mesh.
	TrustDomain string `yaml:"trustDomain"`
	// Services by name; each instance gets an inbound sidecar.
	Services map[string]*Service `yaml:"services"`
	// Upstreams are the local entry points clients connect to.
	Upstreams []Upstream `yaml:"upstreams"`
}

// Service is a set of instances of one application.
type Service struct {
	// Instances are the addresses where the application already listens.
	Instances []Address `yaml:"instances"`
	// Protocol the instances speak: auto (detect), http1, http2, opaque.
	Protocol Protocol `yaml:"protocol"`
}

// Upstream is a local address that leads to a service through the mesh.
type Upstream struct {
	Service string  `yaml:"service"`
	Listen  Address `yaml:"listen"`
	line    int
}

// Address is an IP:port with the line it was written on.
type Address struct {
	netip.AddrPort
	Line int
}

// Protocol is a service's protocol setting; empty means auto.
type Protocol struct {
	endpoint.Protocol
	Line int
}

// UnmarshalYAML parses an IP:port.
func (a *Address) UnmarshalYAML(n *yaml.Node) error {
	a.Line = n.Line
	if n.Kind != yaml.ScalarNode {
		return &lineError{n.Line, "want an address IP:port, got a " + kindName(n.Kind)}
	}
	ap, err := netip.ParseAddrPort(n.Value)
	if err != nil || ap.Port() == 0 {
		return &lineError{n.Line, fmt.Sprintf("%q is not an address: want IP:port, as 127.0.0.1:9001 or [::1]:9001", n.Value)}
	}
	a.AddrPort = ap
	return nil
}

// UnmarshalYAML parses a protocol name.
func (p *Protocol) UnmarshalYAML(n *yaml.Node) error {
	p.Line = n.Line
	v, ok := endpoint.ParseProtocol(n.Value)
	if n.Kind != yaml.ScalarNode || !ok {
		return &lineError{n.Line, fmt.Sprintf("protocol %q: want auto, http1, http2 or opaque", n.Value)}
	}
	p.Protocol = v
	return nil
}

// UnmarshalYAML records the upstream's line for later checks.
func (u *Upstream) UnmarshalYAML(n *yaml.Node) error {
	type plain Upstream
	if err := n.Decode((*plain)(u)); err != nil {
		return err
	}
	u.line = n.Line
	return nil
}

type lineError struct {
	line int
	msg  string
}

func (e *lineError) Error() string { return fmt.Sprintf("line %d: %s", e.line, e.msg) }

func kindName(k yaml.Kind) string {
	switch k {
	case yaml.MappingNode:
		return "mapping"
	case yaml.SequenceNode:
		return "list"
	}
	return "value"
}

// serviceName is what Kubernetes accepts as a ServiceAccount name and a DNS
// label: the name becomes part of the service's SPIFFE ID.
var serviceName = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`)

// Load reads and validates the mesh file at path.
func Load(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("dev: %w", err)
	}
	c, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("dev: %s: %w", path, err)
	}
	return c, nil
}

// Parse decodes and validates a mesh file. Errors name the line.
func Parse(b []byte) (*Config, error) {
	// Once into nodes, for the lines of errors found after decoding, and
	// once into the struct with unknown keys refused.
	nodes := yaml.NewDecoder(bytes.NewReader(b))
	var root yaml.Node
	if err := nodes.Decode(&root); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("the file is empty: it needs at least one service")
		}
		return nil, cleanYAMLError(err)
	}
	var extra yaml.Node
	if err := nodes.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, &lineError{extra.Line, "a second YAML document: the mesh file holds one"}
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	var c Config
	if err := dec.Decode(&c); err != nil {
		return nil, cleanYAMLError(err)
	}
	if err := c.validate(servicesLines(&root)); err != nil {
		return nil, err
	}
	return &c, nil
}

func cleanYAMLError(err error) error {
	var te *yaml.TypeError
	if errors.As(err, &te) && len(te.Errors) > 0 {
		return errors.New(te.Errors[0])
	}
	return err
}

// validate checks what decoding cannot: names, duplicates, references.
func (c *Config) validate(lines map[string]int) error {
	if c.TrustDomain == "" {
		c.TrustDomain = DefaultTrustDomain
	}
	if _, err := spiffeid.TrustDomainFromString(c.TrustDomain); err != nil {
		return &lineError{lines["trustDomain"], fmt.Sprintf("trustDomain %q: %v", c.TrustDomain, err)}
	}
	if len(c.Services) == 0 {
		return &lineError{lines[""], "no services: the file needs at least one under services:"}
	}
	seen := map[netip.AddrPort]string{}
	for _, name := range c.ServiceNames() {
		s := c.Services[name]
		line := lines["services."+name]
		if !serviceName.MatchString(name) {
			return &lineError{line, fmt.Sprintf("service name %q: use lower-case letters, digits and '-' (it becomes part of a SPIFFE ID)", name)}
		}
		if s == nil || len(s.Instances) == 0 {
			return &lineError{line, fmt.Sprintf("service %q has no instances", name)}
		}
		for _, in := range s.Instances {
			if other, dup := seen[in.AddrPort]; dup {
				return &lineError{in.Line, fmt.Sprintf("instance %s is listed twice (also in service %q)", in.AddrPort, other)}
			}
			seen[in.AddrPort] = name
		}
	}
	listens := map[netip.AddrPort]bool{}
	for _, u := range c.Upstreams {
		if u.Service == "" {
			return &lineError{u.line, "upstream without service:"}
		}
		if _, ok := c.Services[u.Service]; !ok {
			return &lineError{u.line, fmt.Sprintf("upstream names service %q, which is not under services:", u.Service)}
		}
		if !u.Listen.IsValid() {
			return &lineError{u.line, fmt.Sprintf("upstream for %q has no listen: address", u.Service)}
		}
		if listens[u.Listen.AddrPort] || seen[u.Listen.AddrPort] != "" {
			return &lineError{u.Listen.Line, fmt.Sprintf("listen address %s is used twice", u.Listen.AddrPort)}
		}
		listens[u.Listen.AddrPort] = true
	}
	return nil
}

// ServiceNames returns the services' names in order.
func (c *Config) ServiceNames() []string {
	names := make([]string, 0, len(c.Services))
	for n := range c.Services {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// servicesLines maps "trustDomain", "services.<name>" and "" (the document)
// to their lines, for errors about values decoding could not see.
func servicesLines(root *yaml.Node) map[string]int {
	lines := map[string]int{"": 1}
	doc := root
	if doc.Kind == yaml.DocumentNode && len(doc.Content) > 0 {
		doc = doc.Content[0]
	}
	lines[""] = doc.Line
	for i := 0; i+1 < len(doc.Content); i += 2 {
		k, v := doc.Content[i], doc.Content[i+1]
		lines[k.Value] = k.Line
		if k.Value == "services" && v.Kind == yaml.MappingNode {
			for j := 0; j+1 < len(v.Content); j += 2 {
				lines["services."+v.Content[j].Value] = v.Content[j].Line
			}
		}
	}
	return lines
}
