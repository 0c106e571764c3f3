package proxy

import (
	"strings"
	"testing"
	"time"
)

func TestParseConfig(t *testing.T) {
	for _, tc := range []struct {
		name    string
		env     map[string]string
		args    []string
		check   func(t *testing.T, c Config)
		wantErr string
	}{
		{name: "defaults", check: func(t *testing.T, c Config) {
			if c.OutboundAddr != "127.0.0.1:4140" || c.InboundAddr != "0.0.0.0:4143" || c.AdminAddr != "0.0.0.0:4191" {
				t.Errorf("listeners %s %s %s", c.OutboundAddr, c.InboundAddr, c.AdminAddr)
			}
			if c.DetectTimeout != time.Second || c.ConnectTimeout != time.Second || c.ShutdownGrace != 30*time.Second {
				t.Errorf("timeouts %v %v %v", c.DetectTimeout, c.ConnectTimeout, c.ShutdownGrace)
			}
			if !c.OpaquePorts.Contains(3306) || !c.OpaquePorts.Contains(25) || c.OpaquePorts.Contains(80) {
				t.Errorf("opaque ports %v", c.OpaquePorts)
			}
		}},
		{name: "environment", env: map[string]string{
			"MESHLET_PROXY_INBOUND_TARGET":    "127.0.0.1:8080",
			"MESHLET_PROXY_OPAQUE_PORTS":      "9000-9010, 22",
			"MESHLET_PROXY_DETECT_TIMEOUT":    "250ms",
			"MESHLET_PROXY_INBOUND_STRICT":    "true",
			"MESHLET_PROXY_SHUTDOWN_GRACE":    "5s",
			"MESHLET_PROXY_POD_NAMESPACE":     "shop",
			"MESHLET_PROXY_IDENTITY":          "spiffe://cluster.local/ns/shop/sa/web",
			"MESHLET_PROXY_UNRELATED_THING":   "ignored",
			"MESHLET_PROXY_OUTBOUND_FALLBACK": "db:5432",
		}, check: func(t *testing.T, c Config) {
			if c.InboundTarget != "127.0.0.1:8080" || !c.InboundStrict || c.DetectTimeout != 250*time.Millisecond ||
				c.ShutdownGrace != 5*time.Second || c.PodNamespace != "shop" || c.OutboundFallback != "db:5432" {
				t.Errorf("config %+v", c)
			}
			if !c.OpaquePorts.Contains(9005) || !c.OpaquePorts.Contains(22) || c.OpaquePorts.Contains(3306) {
				t.Errorf("opaque ports %v: the variable replaces the default list", c.OpaquePorts)
			}
		}},
		{name: "flag beats environment", env: map[string]string{"MESHLET_PROXY_LOG_LEVEL": "debug"},
			args: []string{"--log-level", "warn"}, check: func(t *testing.T, c Config) {
				if c.LogLevel != "warn" {
					t.Errorf("log level %q, want the flag's warn", c.LogLevel)
				}
			}},
		{name: "empty opaque ports", env: map[string]string{"MESHLET_PROXY_OPAQUE_PORTS": ""}, check: func(t *testing.T, c Config) {
			if len(c.OpaquePorts) != 0 {
				t.Errorf("opaque ports %v, want none", c.OpaquePorts)
			}
		}},
		{name: "bad duration names the variable", env: map[string]string{"MESHLET_PROXY_CONNECT_TIMEOUT": "soon"}, wantErr: "MESHLET_PROXY_CONNECT_TIMEOUT"},
		{name: "bad ports", env: map[string]string{"MESHLET_PROXY_OPAQUE_PORTS": "80,70000"}, wantErr: "MESHLET_PROXY_OPAQUE_PORTS"},
		{name: "bad bool", env: map[string]string{"MESHLET_PROXY_INBOUND_STRICT": "maybe"}, wantErr: "MESHLET_PROXY_INBOUND_STRICT"},
		{name: "zero detect timeout", args: []string{"--detect-timeout", "0s"}, wantErr: "detect-timeout"},
		{name: "negative grace", args: []string{"--shutdown-grace", "-1s"}, wantErr: "shutdown-grace"},
		{name: "bad address", args: []string{"--inbound-addr", "4143"}, wantErr: "inbound-addr"},
		{name: "bad target", args: []string{"--inbound-target", "localhost"}, wantErr: "inbound-target"},
		{name: "bad log level", args: []string{"--log-level", "loud"}, wantErr: "log-level"},
		{name: "bad identity", args: []string{"--identity", "web"}, wantErr: "identity"},
		{name: "stray argument", args: []string{"serve"}, wantErr: "unexpected argument"},
		{name: "unknown flag", args: []string{"--nope"}, wantErr: "nope"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lookup := func(k string) (string, bool) { v, ok := tc.env[k]; return v, ok }
			c, _, err := ParseConfig("meshlet-proxy", tc.args, lookup)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one mentioning %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, c)
		})
	}
}

func TestEnvName(t *testing.T) {
	if got := EnvName("trust-anchors-file"); got != "MESHLET_PROXY_TRUST_ANCHORS_FILE" {
		t.Errorf("EnvName = %q", got)
	}
}
