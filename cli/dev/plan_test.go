package dev

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/meshlet/meshlet/destination"
)

func TestPlanKeepsPortsAcrossEdits(t *testing.T) {
	c1, err := Parse([]byte(example))
	if err != nil {
		t.Fatal(err)
	}
	ports := newPortAlloc()
	p1, err := makePlan(c1, nil, ports)
	if err != nil {
		t.Fatal(err)
	}
	if len(p1.Sidecars) != 2 || len(p1.Upstreams) != 1 {
		t.Fatalf("plan: %d sidecars, %d upstreams", len(p1.Sidecars), len(p1.Upstreams))
	}
	if got := p1.Sidecars[0].Identity; got != "spiffe://meshlet.local/ns/dev/sa/web" {
		t.Errorf("sidecar identity %q", got)
	}
	edited := strings.Replace(example, "      - 127.0.0.1:9002\n", "      - 127.0.0.1:9002\n      - 127.0.0.1:9003\n", 1)
	c2, err := Parse([]byte(edited))
	if err != nil {
		t.Fatal(err)
	}
	p2, err := makePlan(c2, p1, ports)
	if err != nil {
		t.Fatal(err)
	}
	if len(p2.Sidecars) != 3 {
		t.Fatalf("after adding an instance: %d sidecars", len(p2.Sidecars))
	}
	for i := 0; i < 2; i++ {
		if p2.Sidecars[i].Inbound != p1.Sidecars[i].Inbound || p2.Sidecars[i].Admin != p1.Sidecars[i].Admin {
			t.Errorf("sidecar %d changed ports across the edit: %+v → %+v", i, p1.Sidecars[i], p2.Sidecars[i])
		}
	}
	if p2.Upstreams[0].Admin != p1.Upstreams[0].Admin {
		t.Error("upstream proxy changed admin port across the edit")
	}
	if p2.Sidecars[2].Inbound == p1.Sidecars[0].Inbound || p2.Sidecars[2].Inbound == p1.Sidecars[1].Inbound {
		t.Error("new sidecar got a port already in use")
	}
	// Removing the first instance keeps the others' names and ports.
	removed := strings.Replace(edited, "      - 127.0.0.1:9001\n", "", 1)
	c3, err := Parse([]byte(removed))
	if err != nil {
		t.Fatal(err)
	}
	p3, err := makePlan(c3, p2, ports)
	if err != nil {
		t.Fatal(err)
	}
	for i, s := range p3.Sidecars {
		if want := p2.Sidecars[i+1]; s.Name() != want.Name() || s.Inbound != want.Inbound {
			t.Errorf("after removing web-0, sidecar %d is %s at %s; want it unchanged as %s at %s", i, s.Name(), s.Inbound, want.Name(), want.Inbound)
		}
	}
	// A new instance then gets a fresh index, not the removed one's.
	again := strings.Replace(removed, "      - 127.0.0.1:9003\n", "      - 127.0.0.1:9003\n      - 127.0.0.1:9004\n", 1)
	c4, _ := Parse([]byte(again))
	p4, err := makePlan(c4, p3, ports)
	if err != nil {
		t.Fatal(err)
	}
	if got := p4.Sidecars[2].Name(); got != "sidecar/web-0" {
		t.Errorf("new sidecar named %s, want the lowest free index: sidecar/web-0", got)
	}
}

func TestEndpointsFileResolvesByNameAndListenAddress(t *testing.T) {
	c, err := Parse([]byte(example))
	if err != nil {
		t.Fatal(err)
	}
	p, err := makePlan(c, nil, newPortAlloc())
	if err != nil {
		t.Fatal(err)
	}
	st := newState(t.TempDir())
	if err := st.init(c.TrustDomain); err != nil {
		t.Fatal(err)
	}
	if err := st.writeEndpoints(p); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(st.endpoints)
	if err != nil {
		t.Fatal(err)
	}
	spec, err := destination.ParseFile(b)
	if err != nil {
		t.Fatalf("destination refuses the generated file: %v\n%s", err, b)
	}
	web := spec.Services["web"]
	if len(web.Endpoints) != 2 || web.Endpoints[0].Address != p.Sidecars[0].Inbound || web.Endpoints[0].Identity != p.Sidecars[0].Identity {
		t.Errorf("web endpoints %+v, want the sidecars' inbound addresses and identities", web.Endpoints)
	}
	if len(web.Aliases) != 1 || web.Aliases[0] != "127.0.0.1:18080" {
		t.Errorf("aliases %v, want the upstream's listen address", web.Aliases)
	}
	for _, f := range []string{st.anchors, st.issuerCert, st.issuerKey} {
		if fi, err := os.Stat(f); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v, mode %v; want a 0600 file", filepath.Base(f), err, fi.Mode())
		}
	}
}

func TestJoinTokensOnePerProxy(t *testing.T) {
	st := newState(t.TempDir())
	if err := st.init("meshlet.local"); err != nil {
		t.Fatal(err)
	}
	a, err := st.tokenFile("sidecar/web-0", "spiffe://meshlet.local/ns/dev/sa/web")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := st.tokenFile("sidecar/web-1", "spiffe://meshlet.local/ns/dev/sa/web")
	if a == b {
		t.Fatal("two proxies share a token file")
	}
	st.forget("sidecar/web-1")
	if err := st.writeJoinTokens(); err != nil {
		t.Fatal(err)
	}
	joins, _ := os.ReadFile(st.joinTokens)
	tokA, _ := os.ReadFile(a)
	tokB, _ := os.ReadFile(b)
	if !strings.Contains(string(joins), string(tokA)) || strings.Contains(string(joins), string(tokB)) {
		t.Fatalf("join tokens file should hold web-0's token only:\n%s", joins)
	}
}

func TestListenInUseNamesTheLine(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := Parse([]byte("services:\n  web:\n    instances: [127.0.0.1:1]\nupstreams:\n  - service: web\n    listen: " + ln.Addr().String() + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	err = checkListenFree(c, nil)
	if err == nil || !strings.Contains(err.Error(), "line 6: cannot listen on "+ln.Addr().String()) {
		t.Fatalf("error = %v, want one naming line 6 and the address", err)
	}
}
