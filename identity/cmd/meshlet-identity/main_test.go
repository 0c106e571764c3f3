package main

import (
	"io"
	"log/slog"
	"testing"
	"time"
)

func TestParseFlags(t *testing.T) {
	o, err := parseFlags(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	// The defaults are the names every component agrees on
	// (docs/architecture.md).
	if o.cfg.Addr != ":8080" || o.cfg.AdminAddr != ":9990" || o.cfg.Audience != "identity.meshlet.io" ||
		o.cfg.TrustDomain != "cluster.local" || o.cfg.Mode != "kubernetes" || o.cfg.Lifetime != 24*time.Hour ||
		o.cfg.Backdate != time.Minute || o.logLevel != slog.LevelInfo || o.cfg.TLS {
		t.Fatalf("defaults: %+v", o)
	}
	o, err = parseFlags([]string{"-mode=local", "-trust-domain=meshlet.local", "-join-tokens-file=/t",
		"-cert-lifetime=1h", "-tls", "-log-level=debug", "-addr=127.0.0.1:1"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.cfg.Mode != "local" || o.cfg.TrustDomain != "meshlet.local" || o.cfg.JoinTokensFile != "/t" ||
		o.cfg.Lifetime != time.Hour || !o.cfg.TLS || o.logLevel != slog.LevelDebug || o.cfg.Addr != "127.0.0.1:1" {
		t.Fatalf("flags not bound: %+v", o)
	}
	for _, bad := range [][]string{{"-log-level=loud"}, {"-cert-lifetime=soon"}, {"extra"}, {"-nope"}} {
		if _, err := parseFlags(bad, io.Discard); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
