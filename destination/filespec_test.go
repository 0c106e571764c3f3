package destination

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/meshlet/meshlet/proxy/endpoint"
)

const sampleFile = `# meshctl dev writes files like this one.
services:
  web:
    port: 8080
    protocol: http1
    aliases: ["127.0.0.1:7001"]
    endpoints:
      - address: 127.0.0.1:9001
        identity: spiffe://meshlet.local/ns/dev/sa/web
        zone: local
        labels: {version: v1}
      - address: 127.0.0.1:9002
        protocol: http2
        weight: 3
  db:
    protocol: opaque
    endpoints:
      - address: "[::1]:5432"
`

func TestParseFileTable(t *testing.T) {
	tab, spec, err := parseFileTable([]byte(sampleFile))
	if err != nil {
		t.Fatal(err)
	}
	if len(spec.Services) != 2 {
		t.Fatalf("services = %d", len(spec.Services))
	}
	web := tab.byName["web"]
	if web == nil || web.port != 8080 || len(web.eps) != 2 {
		t.Fatalf("web = %+v", web)
	}
	e0 := web.eps[0]
	if e0.Addr != netip.MustParseAddrPort("127.0.0.1:9001") || e0.Identity != "spiffe://meshlet.local/ns/dev/sa/web" ||
		e0.Protocol != endpoint.ProtocolHTTP1 || e0.Zone != "local" || e0.Labels["version"] != "v1" || e0.Labels["service"] != "web" {
		t.Errorf("web endpoint 1 = %+v", e0)
	}
	if e1 := web.eps[1]; e1.Protocol != endpoint.ProtocolHTTP2 || e1.Weight != 3 {
		t.Errorf("web endpoint 2 = %+v", e1)
	}
	if tab.byAlias[Authority{IP: netip.MustParseAddr("127.0.0.1"), Port: 7001}] != web {
		t.Error("alias not indexed")
	}
	if db := tab.byName["db"]; db == nil || db.eps[0].Protocol != endpoint.ProtocolOpaque || db.eps[0].Addr != netip.MustParseAddrPort("[::1]:5432") {
		t.Errorf("db = %+v", db)
	}
}

func TestParseFileErrorsNameTheLine(t *testing.T) {
	tests := []struct {
		name, yaml, want string
	}{
		{"unknown field", "services:\n  web:\n    endpoints: []\n    colour: red\n", "line 4: field colour not found"},
		{"bad yaml", "services:\n  web: [\n", "line 2"},
		{"type error", "services:\n  web:\n    port: eighty\n", "line 3: cannot unmarshal"},
		{"port range", "services:\n  web:\n    port: 70000\n", "line 3"},
		{"bad address", "services:\n  web:\n    endpoints:\n      - address: 127.0.0.1\n", `line 4: service "web": endpoint 1: address: "127.0.0.1"`},
		{"port zero", "services:\n  web:\n    endpoints:\n      - address: 127.0.0.1:0\n", "line 4"},
		{"bad identity", "services:\n  web:\n    endpoints:\n      - address: 127.0.0.1:1\n        identity: web\n", "line 5: service \"web\": endpoint 1: identity: \"web\" is not a SPIFFE ID"},
		{"bad protocol", "services:\n  web:\n    protocol: quic\n    endpoints: []\n", `line 3: service "web": protocol "quic"`},
		{"bad endpoint protocol", "services:\n  web:\n    endpoints:\n      - address: 127.0.0.1:1\n      - address: 127.0.0.1:2\n        protocol: x\n", "line 6: service \"web\": endpoint 2: protocol"},
		{"bad name", "services:\n  Web_1:\n    endpoints: []\n", `line 2: service "Web_1": bad name`},
		{"same name", "services:\n  web:\n    endpoints: []\n  WEB:\n    endpoints: []\n", `same name as service`},
		{"duplicate key", "services:\n  web: {}\n  web: {}\n", "line 3"},
		{"alias without port", "services:\n  web:\n    aliases: [x, 127.0.0.1]\n", `service "web": alias "x": no port`},
		{"alias twice", "services:\n  a:\n    aliases: [\"h:1\"]\n  b:\n    aliases: [\"h:1\"]\n", `alias "h:1" is also an alias of service "a"`},
		{"address twice", "services:\n  web:\n    endpoints:\n      - address: 127.0.0.1:1\n      - address: 127.0.0.1:1\n", "line 5: service \"web\": endpoint 2: address 127.0.0.1:1 listed twice"},
		{"bad label", "services:\n  web:\n    endpoints:\n      - address: 127.0.0.1:1\n        labels: {\"a-b\": x}\n", `line 5: service "web": endpoint 1: labels: "a-b"`},
		{"two documents", "services: {}\n---\nservices: {}\n", "only one YAML document"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseFile([]byte(tt.yaml))
			if err == nil || !errors.Is(err, ErrInvalidFile) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("ParseFile error = %v; want one containing %q", err, tt.want)
			}
		})
	}
}

func TestParseFileEmpty(t *testing.T) {
	for _, in := range []string{"", "# nothing\n", "services: {}\n", "services:\n"} {
		spec, err := ParseFile([]byte(in))
		if err != nil || len(spec.Services) != 0 {
			t.Errorf("ParseFile(%q) = %+v, %v", in, spec, err)
		}
	}
}

// FuzzParseFile feeds arbitrary YAML: it must never panic, errors must wrap
// ErrInvalidFile, and an accepted file must give a consistent table.
func FuzzParseFile(f *testing.F) {
	f.Add([]byte(sampleFile))
	f.Add([]byte("services:\n  a:\n    endpoints:\n      - address: 10.0.0.1:1\n"))
	f.Add([]byte("services: {a: {aliases: ['b:1'], endpoints: [{address: '[::1]:2', identity: 'spiffe://x/y'}]}}"))
	f.Fuzz(func(t *testing.T, data []byte) {
		tab, spec, err := parseFileTable(data)
		if err != nil {
			if !errors.Is(err, ErrInvalidFile) {
				t.Fatalf("error %v does not wrap ErrInvalidFile", err)
			}
			return
		}
		n := 0
		for _, svc := range spec.Services {
			n += len(svc.Endpoints)
		}
		total := 0
		for _, e := range tab.byName {
			total += len(e.eps)
			for _, ep := range e.eps {
				if !ep.Addr.IsValid() || ep.Addr.Port() == 0 {
					t.Fatalf("invalid address accepted: %v", ep.Addr)
				}
			}
		}
		if total != n {
			t.Fatalf("table has %d endpoints, spec %d", total, n)
		}
	})
}
