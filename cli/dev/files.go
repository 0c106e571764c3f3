package dev

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"go.yaml.in/yaml/v3"

	"github.com/meshlet/meshlet/destination"
	"github.com/meshlet/meshlet/identity"
	"github.com/meshlet/meshlet/proxy/endpoint"
)

// state is the mesh's folder: the local CA, the join tokens, the endpoints
// file the destination service reads, the proxies' tokens and every log.
type state struct {
	dir        string
	anchors    string // trust anchor PEM, read by identity and every proxy
	issuerCert string
	issuerKey  string
	joinTokens string // identity's join tokens file
	endpoints  string // destination's file backend
	logs       string
	status     string // what runs where, for `meshctl dev status`

	tokens map[string]identity.JoinToken // proxy name → its join token
}

func newState(dir string) *state {
	return &state{
		dir:        dir,
		anchors:    filepath.Join(dir, "ca", "ca.crt"),
		issuerCert: filepath.Join(dir, "ca", "issuer.crt"),
		issuerKey:  filepath.Join(dir, "ca", "issuer.key"),
		joinTokens: filepath.Join(dir, "identity", "join-tokens"),
		endpoints:  filepath.Join(dir, "destination", "endpoints.yaml"),
		logs:       filepath.Join(dir, "logs"),
		status:     filepath.Join(dir, "status.json"),
		tokens:     map[string]identity.JoinToken{},
	}
}

// init creates the folders and a fresh CA: a trust anchor valid for a year
// and an issuer valid for a week (a dev mesh lives for hours).
func (s *state) init(trustDomain string) error {
	for _, d := range []string{"ca", "identity", "destination", "tokens", "logs"} {
		if err := os.MkdirAll(filepath.Join(s.dir, d), 0o700); err != nil {
			return fmt.Errorf("dev: state dir: %w", err)
		}
	}
	root, err := identity.NewRootCA(trustDomain, 365*24*time.Hour)
	if err != nil {
		return fmt.Errorf("dev: %w", err)
	}
	issuer, err := identity.NewIssuer(root, 7*24*time.Hour)
	if err != nil {
		return fmt.Errorf("dev: %w", err)
	}
	for path, b := range map[string][]byte{s.anchors: root.CertPEM, s.issuerCert: issuer.CertPEM, s.issuerKey: issuer.KeyPEM} {
		if err := writeAtomic(path, b, 0o600); err != nil {
			return err
		}
	}
	return nil
}

// tokenFile returns the path of the join token file of proxy name, minting
// and writing the token on first use.
func (s *state) tokenFile(name, id string) (string, error) {
	path := filepath.Join(s.dir, "tokens", strings.ReplaceAll(name, "/", "_")+".token")
	if _, ok := s.tokens[name]; ok {
		return path, nil
	}
	tok, err := identity.NewJoinToken()
	if err != nil {
		return "", err
	}
	sid, err := spiffeid.FromString(id)
	if err != nil {
		return "", fmt.Errorf("dev: %w", err)
	}
	if err := writeAtomic(path, []byte(tok), 0o600); err != nil {
		return "", err
	}
	s.tokens[name] = identity.JoinToken{Token: tok, Identity: sid}
	return path, nil
}

// forget drops the join token of a proxy that no longer runs.
func (s *state) forget(name string) { delete(s.tokens, name) }

// writeJoinTokens writes every live proxy's token for the identity service.
func (s *state) writeJoinTokens() error {
	list := make([]identity.JoinToken, 0, len(s.tokens))
	for _, t := range s.tokens {
		list = append(list, t)
	}
	return writeAtomic(s.joinTokens, identity.FormatJoinTokens(list), 0o600)
}

// writeEndpoints writes the destination file for p: each service resolves,
// by name and by its upstreams' listen addresses, to its sidecars.
func (s *state) writeEndpoints(p *plan) error {
	spec := destination.FileSpec{Services: map[string]destination.FileService{}}
	for _, sc := range p.Sidecars {
		fs := spec.Services[sc.Service]
		fs.Protocol = protocolHint(sc.Protocol)
		fs.Endpoints = append(fs.Endpoints, destination.FileEndpoint{
			Address:  sc.Inbound,
			Identity: sc.Identity,
			Labels:   map[string]string{"namespace": devNamespace, "service": sc.Service, "pod": fmt.Sprintf("%s-%d", sc.Service, sc.Index), "serviceaccount": sc.Service},
		})
		spec.Services[sc.Service] = fs
	}
	for _, u := range p.Upstreams {
		fs := spec.Services[u.Service]
		fs.Aliases = append(fs.Aliases, u.Listen.String())
		spec.Services[u.Service] = fs
	}
	b, err := yaml.Marshal(&spec)
	if err != nil {
		return fmt.Errorf("dev: endpoints file: %w", err)
	}
	if _, err := destination.ParseFile(b); err != nil {
		return fmt.Errorf("dev: generated endpoints file is invalid (a bug): %w", err)
	}
	return writeAtomic(s.endpoints, b, 0o600)
}

// protocolHint tells the destination what a service's endpoints speak. Only
// opaque needs saying: between proxies HTTP travels as HTTP/2 over mTLS
// whatever the application speaks, and the sidecar detects the rest.
func protocolHint(p Protocol) string {
	if p.Protocol == endpoint.ProtocolOpaque {
		return "opaque"
	}
	return "auto"
}

// writeAtomic replaces path with b so that a reader never sees half a file.
func writeAtomic(path string, b []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-"+filepath.Base(path))
	if err != nil {
		return fmt.Errorf("dev: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return fmt.Errorf("dev: %w", err)
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return fmt.Errorf("dev: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("dev: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("dev: %w", err)
	}
	return nil
}
