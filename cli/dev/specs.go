package dev

import (
	"time"
)

// controlPlane holds the local identity and destination services' addresses.
type controlPlane struct {
	identity, identityAdmin       string
	destination, destinationAdmin string
}

func newControlPlane(ports *portAlloc) (controlPlane, error) {
	var cp controlPlane
	err := ports.fill(&cp.identity, &cp.identityAdmin, &cp.destination, &cp.destinationAdmin)
	return cp, err
}

// owns reports whether the process name is the control plane's.
func (cp controlPlane) owns(name string) bool { return name == "identity" || name == "destination" }

// reloadInterval is how often the control plane re-reads the files
// `meshctl dev` rewrites on an edit.
const reloadInterval = 200 * time.Millisecond

func (cp controlPlane) identitySpec(b binaries, st *state, trustDomain string) procSpec {
	return procSpec{
		Name: "identity",
		Bin:  b.identity,
		Args: []string{
			"-mode", "local",
			"-addr", cp.identity,
			"-admin-addr", cp.identityAdmin,
			"-trust-domain", trustDomain,
			"-trust-anchors-file", st.anchors,
			"-issuer-cert-file", st.issuerCert,
			"-issuer-key-file", st.issuerKey,
			"-join-tokens-file", st.joinTokens,
			"-reload-interval", reloadInterval.String(),
			"-tls", "-server-identity", spiffeID(trustDomain, identityAccount),
		},
		Admin: cp.identityAdmin,
	}
}

func (cp controlPlane) destinationSpec(b binaries, st *state) procSpec {
	return procSpec{
		Name: "destination",
		Bin:  b.destination,
		Args: []string{
			"--source", "file",
			"--file", st.endpoints,
			"--grpc-addr", cp.destination,
			"--admin-addr", cp.destinationAdmin,
			"--file-poll-interval", reloadInterval.String(),
		},
		Admin: cp.destinationAdmin,
	}
}

// namedSpec is a proxy's process with the identity it runs as.
type namedSpec struct {
	procSpec
	identity string
}

// specs returns every proxy process of p by name.
func (m *mesh) specs(p *plan) map[string]namedSpec {
	out := map[string]namedSpec{}
	for _, s := range p.Sidecars {
		env := m.proxyEnv(p.TrustDomain, s.Name(), s.Identity, s.Admin)
		env = append(env,
			"MESHLET_PROXY_INBOUND_ADDR="+s.Inbound,
			"MESHLET_PROXY_INBOUND_TARGET="+s.Instance.String(),
			// A sidecar here only receives: its outbound side listens on
			// a port nobody is redirected to.
			"MESHLET_PROXY_OUTBOUND_ADDR="+s.Outbound,
		)
		out[s.Name()] = namedSpec{procSpec{Name: s.Name(), Bin: m.bins.proxy, Env: env, Admin: s.Admin}, s.Identity}
	}
	for _, u := range p.Upstreams {
		env := m.proxyEnv(p.TrustDomain, u.Name(), u.Identity, u.Admin)
		env = append(env,
			"MESHLET_PROXY_OUTBOUND_ADDR="+u.Listen.String(),
			"MESHLET_PROXY_INBOUND_ADDR="+u.Inbound,
		)
		if protocolHint(u.Protocol) == "opaque" {
			env = append(env, "MESHLET_PROXY_OPAQUE_PORTS="+itoa(int(u.Listen.Port())))
			// Opaque connections to the listen address have no Host to be
			// routed by: the destination knows the address as an alias.
			env = append(env, "MESHLET_PROXY_OUTBOUND_FALLBACK="+u.Listen.String())
		}
		out[u.Name()] = namedSpec{procSpec{Name: u.Name(), Bin: m.bins.proxy, Env: env, Admin: u.Admin}, u.Identity}
	}
	return out
}

// proxyEnv is the environment every local proxy shares.
func (m *mesh) proxyEnv(trustDomain, name, id, admin string) []string {
	token, _ := m.st.tokenFile(name, id) // an error shows when the proxy reads the file
	return []string{
		"MESHLET_PROXY_IPV6=false", // nothing is redirected here: the loopback listeners are all there is
		"MESHLET_PROXY_ADMIN_ADDR=" + admin,
		"MESHLET_PROXY_IDENTITY=" + id,
		"MESHLET_PROXY_IDENTITY_ADDR=" + m.cp.identity,
		"MESHLET_PROXY_IDENTITY_SERVER_ID=" + spiffeID(trustDomain, identityAccount),
		"MESHLET_PROXY_IDENTITY_TOKEN_FILE=" + token,
		"MESHLET_PROXY_TRUST_ANCHORS_FILE=" + m.st.anchors,
		"MESHLET_PROXY_DESTINATION_ADDR=" + m.cp.destination,
		"MESHLET_PROXY_POD_NAMESPACE=" + devNamespace,
		"MESHLET_PROXY_SHUTDOWN_GRACE=" + m.opt.Grace.String(),
	}
}
