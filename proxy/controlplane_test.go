package proxy

import (
	"encoding/pem"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/meshlet/meshlet/proxy/meshtls/meshtlstest"
)

func TestIdentityClientWiredFromConfig(t *testing.T) {
	checkNoLeaks(t)
	ca := meshtlstest.NewCA(t, "meshlet.local")
	var anchors []byte
	for _, c := range ca.Bundle().X509Authorities() {
		anchors = append(anchors, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	token := filepath.Join(t.TempDir(), "token")
	os.WriteFile(token, []byte("join-token"), 0o600)
	// meshlet-identity is down: the proxy runs, asks, and stays not ready.
	p := startProxy(t, func(c *Config) {
		c.IdentityAddr = closedAddr(t)
		c.Identity = webID
		c.TrustAnchors = string(anchors)
		c.IdentityTokenFile = token
	})
	code, body := scrape(t, p.Proxy, "/ready")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "identity") {
		t.Fatalf("/ready with identity configured but unreachable = %d %q, want 503", code, body)
	}
	if p.cfg.Source == nil || p.serverTLS == nil {
		t.Fatal("identity client not wired in as the proxy's Source")
	}
}

func TestIdentityConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mutate func(*Config)
		want   string
	}{
		{"no SPIFFE ID", func(c *Config) { c.IdentityAddr = "127.0.0.1:8080" }, "identity"},
		{"no anchors", func(c *Config) { c.IdentityAddr = "127.0.0.1:8080"; c.Identity = webID }, "trust-anchors"},
		{"unreadable anchors file", func(c *Config) {
			c.IdentityAddr = "127.0.0.1:8080"
			c.Identity = webID
			c.TrustAnchorsFile = filepath.Join(t.TempDir(), "missing.pem")
		}, "trust anchors"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.OutboundAddr, cfg.InboundAddr, cfg.AdminAddr = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
			cfg.Logger = testLogger()
			tc.mutate(&cfg)
			if _, err := New(cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New = %v, want an error mentioning %q", err, tc.want)
			}
		})
	}
}

// TestDestinationDownForwardsDirect: with meshlet-destination unreachable,
// an opaque connection is forwarded to its destination after the connect
// timeout rather than refused.
func TestDestinationDownForwardsDirect(t *testing.T) {
	checkNoLeaks(t)
	echo := echoServer(t)
	p := startProxy(t, func(c *Config) {
		c.DestinationAddr = closedAddr(t)
		c.OutboundFallback = echo
		c.ConnectTimeout = 300 * time.Millisecond
	})
	start := time.Now()
	if got, err := roundTrip(t, p.OutboundAddr().String(), "\x00x"); err != nil || got != "\x00x" {
		t.Fatalf("echo with the control plane down: %q, %v", got, err)
	}
	if el := time.Since(start); el < 300*time.Millisecond {
		t.Errorf("forwarded after %v, before the resolution could time out", el)
	}
	if n := metric(p.m.refused.WithLabelValues("outbound", reasonResolveTimeout)); n != 1 {
		t.Errorf("resolve timeouts = %v, want 1", n)
	}
}
