package dev

import (
	"strings"
	"testing"
)

const example = `trustDomain: meshlet.local          # optional
services:
  web:
    instances:                      # where each app instance already listens (plain, loopback)
      - 127.0.0.1:9001
      - 127.0.0.1:9002
    protocol: auto                  # optional: auto (detect), http1, http2, opaque
upstreams:                          # local entry points for clients: connect here to reach a service
  - service: web
    listen: 127.0.0.1:18080
`

func TestParseExample(t *testing.T) {
	c, err := Parse([]byte(example))
	if err != nil {
		t.Fatal(err)
	}
	if c.TrustDomain != "meshlet.local" || len(c.Services) != 1 || len(c.Upstreams) != 1 {
		t.Fatalf("parsed %+v", c)
	}
	web := c.Services["web"]
	if len(web.Instances) != 2 || web.Instances[1].String() != "127.0.0.1:9002" || web.Instances[1].Line != 6 {
		t.Fatalf("instances %+v", web.Instances)
	}
	if c.Upstreams[0].Listen.String() != "127.0.0.1:18080" || c.Upstreams[0].Service != "web" {
		t.Fatalf("upstream %+v", c.Upstreams[0])
	}
}

func TestParseDefaults(t *testing.T) {
	c, err := Parse([]byte("services:\n  db:\n    instances: ['[::1]:5432']\n    protocol: opaque\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.TrustDomain != DefaultTrustDomain || c.Services["db"].Protocol.String() != "opaque" {
		t.Fatalf("parsed %+v", c)
	}
}

func TestParseErrorsNameTheLine(t *testing.T) {
	for _, tc := range []struct {
		name, in, want string
	}{
		{"unknown field", "services:\n  web:\n    instances: [127.0.0.1:1]\n    replicas: 3\n", "line 4: field replicas not found"},
		{"bad address", "services:\n  web:\n    instances:\n      - localhost:80\n", `line 4: "localhost:80" is not an address`},
		{"port zero", "services:\n  web:\n    instances: [127.0.0.1:0]\n", "line 3:"},
		{"bad protocol", "services:\n  web:\n    instances: [127.0.0.1:1]\n    protocol: smtp\n", `line 4: protocol "smtp"`},
		{"unknown upstream service", "services:\n  web:\n    instances: [127.0.0.1:1]\nupstreams:\n  - service: api\n    listen: 127.0.0.1:2\n", `line 5: upstream names service "api"`},
		{"duplicate instance", "services:\n  a:\n    instances: [127.0.0.1:1]\n  b:\n    instances:\n      - 127.0.0.1:1\n", "line 6: instance 127.0.0.1:1 is listed twice"},
		{"bad name", "services:\n  Web_1:\n    instances: [127.0.0.1:1]\n", `line 2: service name "Web_1"`},
		{"no instances", "services:\n  web: {}\n", `line 2: service "web" has no instances`},
		{"no services", "trustDomain: x.y\n", "line 1: no services"},
		{"bad trust domain", "trustDomain: 'Not A Domain'\nservices:\n  web:\n    instances: [127.0.0.1:1]\n", "line 1: trustDomain"},
		{"syntax", "services:\n  web:\n    instances: [127.0.0.1:1\n", "line"},
		{"empty", "", "empty"},
		{"two documents", "services:\n  web:\n    instances: [127.0.0.1:1]\n---\nservices: {}\n", "line 4: a second YAML document"},
		{"listen twice", "services:\n  web:\n    instances: [127.0.0.1:1]\nupstreams:\n  - {service: web, listen: 127.0.0.1:2}\n  - service: web\n    listen: 127.0.0.1:2\n", "line 7: listen address 127.0.0.1:2 is used twice"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.in))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(example))
	f.Add([]byte("services:\n  web:\n    instances: [127.0.0.1:1]\n"))
	f.Add([]byte("services: {a: {instances: ['[::1]:1'], protocol: h2}}\nupstreams: [{service: a, listen: 127.0.0.1:9}]"))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := Parse(b)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error message")
			}
			return
		}
		// What parses is valid: every upstream names a known service and
		// every service has instances.
		for _, u := range c.Upstreams {
			if c.Services[u.Service] == nil {
				t.Fatalf("accepted upstream to unknown service %q", u.Service)
			}
		}
		for n, s := range c.Services {
			if len(s.Instances) == 0 {
				t.Fatalf("accepted service %q without instances", n)
			}
		}
	})
}
