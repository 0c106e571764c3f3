package destination

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

func TestKubeTarget(t *testing.T) {
	tests := []struct {
		authority, ns string
		want          kubeTopic
		wantErr       string
	}{
		{authority: "web.shop.svc.cluster.local:80", want: kubeTopic{namespace: "shop", service: "web", port: 80}},
		{authority: "web-0.db.shop.svc.cluster.local:5432", want: kubeTopic{namespace: "shop", service: "db", hostname: "web-0", port: 5432}},
		{authority: "web.shop.svc:80", want: kubeTopic{namespace: "shop", service: "web", port: 80}},
		{authority: "web.shop:80", want: kubeTopic{namespace: "shop", service: "web", port: 80}},
		{authority: "web:80", ns: "shop", want: kubeTopic{namespace: "shop", service: "web", port: 80}},
		{authority: "web:80", wantErr: "context_namespace"},
		{authority: "web.shop", wantErr: "no port"},
		{authority: "10.96.0.10:53", want: kubeTopic{ip: netip.MustParseAddr("10.96.0.10"), port: 53}},
		{authority: "api.github.example.com:443", want: kubeTopic{port: 443}},
		{authority: "x.y.z.w.svc.cluster.local:80", want: kubeTopic{port: 80}},
		{authority: "web.shop.pod.cluster.local:80", want: kubeTopic{port: 80}},
		{authority: "cluster.local:80", want: kubeTopic{namespace: "local", service: "cluster", port: 80}},
	}
	for _, tt := range tests {
		t.Run(tt.authority, func(t *testing.T) {
			a, err := ParseAuthority(tt.authority)
			if err != nil {
				t.Fatal(err)
			}
			got, err := kubeTarget(a, tt.ns, "cluster.local")
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.Is(err, ErrInvalidAuthority) {
					t.Fatalf("got %+v, %v; want error with %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("got %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}

func TestKubeTargetCustomDomain(t *testing.T) {
	a, _ := ParseAuthority("web.shop.svc.corp.example:80")
	got, err := kubeTarget(a, "", "corp.example")
	if err != nil || got != (kubeTopic{namespace: "shop", service: "web", port: 80}) {
		t.Fatalf("got %+v, %v", got, err)
	}
	a, _ = ParseAuthority("web.shop.svc.cluster.local:80")
	if got, _ := kubeTarget(a, "", "corp.example"); got.service != "" {
		t.Fatalf("cluster.local name resolved under another domain: %+v", got)
	}
}
