package destination

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

func TestParseAuthority(t *testing.T) {
	tests := []struct {
		in      string
		want    Authority
		wantErr string
	}{
		{in: "web.default.svc.cluster.local:8080", want: Authority{Host: "web.default.svc.cluster.local", Port: 8080}},
		{in: "Web.Default:80", want: Authority{Host: "web.default", Port: 80}},
		{in: "web.default.svc.cluster.local.:80", want: Authority{Host: "web.default.svc.cluster.local", Port: 80}},
		{in: "web", want: Authority{Host: "web"}},
		{in: "10.96.0.1:443", want: Authority{IP: netip.MustParseAddr("10.96.0.1"), Port: 443}},
		{in: "[fd00::1]:8080", want: Authority{IP: netip.MustParseAddr("fd00::1"), Port: 8080}},
		{in: "[::ffff:10.0.0.1]:80", want: Authority{IP: netip.MustParseAddr("10.0.0.1"), Port: 80}},
		{in: "fd00::1", want: Authority{IP: netip.MustParseAddr("fd00::1")}},
		{in: "10.0.0.1", want: Authority{IP: netip.MustParseAddr("10.0.0.1")}},
		{in: "a-b.c1:65535", want: Authority{Host: "a-b.c1", Port: 65535}},
		{in: "", wantErr: "empty"},
		{in: "web:", wantErr: "empty port"},
		{in: "web:0", wantErr: "out of range"},
		{in: "web:65536", wantErr: "out of range"},
		{in: "web:123456", wantErr: "out of range"},
		{in: "web:http", wantErr: "not a number"},
		{in: "web:+80", wantErr: "not a number"},
		{in: "fd00::1:80:90x", wantErr: "too many colons"},
		{in: "[fd00::1", wantErr: "missing ']'"},
		{in: "[fd00::1]x", wantErr: "after ']'"},
		{in: "[10.0.0.1]:80", wantErr: "bad IPv6"},
		{in: "[fe80::1%eth0]:80", wantErr: "zones"},
		{in: "fe80::1%eth0", wantErr: "zones"},
		{in: "-web:80", wantErr: "starts or ends"},
		{in: "we_b:80", wantErr: "invalid character"},
		{in: "web..default:80", wantErr: "empty label"},
		{in: ".:80", wantErr: "empty host"},
		{in: ":80", wantErr: "empty host"},
		{in: strings.Repeat("a", 64) + ":80", wantErr: "longer than 63"},
		{in: strings.Repeat("a.", 130) + "a:80", wantErr: "at most"},
		{in: "web/path:80", wantErr: "invalid character"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseAuthority(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.Is(err, ErrInvalidAuthority) {
					t.Fatalf("ParseAuthority(%q) = %+v, %v; want error containing %q", tt.in, got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParseAuthority(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
			}
		})
	}
}

// FuzzParseAuthority checks that any accepted authority is canonical: its
// String parses back to the same value.
func FuzzParseAuthority(f *testing.F) {
	for _, s := range []string{"web.ns.svc.cluster.local:80", "[::1]:80", "10.0.0.1:1", "web", "a:65535", "[fe80::1%x]:1", "::1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, err := ParseAuthority(s)
		if err != nil {
			if !errors.Is(err, ErrInvalidAuthority) {
				t.Fatalf("error %v does not wrap ErrInvalidAuthority", err)
			}
			return
		}
		if a.IP.IsValid() == (a.Host != "") {
			t.Fatalf("%q: exactly one of IP and Host must be set: %+v", s, a)
		}
		b, err := ParseAuthority(a.String())
		if err != nil || b != a {
			t.Fatalf("%q -> %q -> %+v, %v; want %+v", s, a.String(), b, err, a)
		}
		if a.IP.IsValid() {
			if _, err := kubeTarget(a, "ns", "cluster.local"); a.Port != 0 && err != nil {
				t.Fatalf("kubeTarget(%+v): %v", a, err)
			}
		}
	})
}
