package deploy

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

const pemStub = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"

func values() Values {
	p := pemStub
	return Values{
		Version: "v1", Registry: "r.example/m", Tag: "v1", TrustDomain: "cluster.local", ClusterDomain: "cluster.local",
		PKI: PKI{TrustAnchorsPEM: p, IssuerCertPEM: p, IssuerKeyPEM: p, WebhookCAPEM: p, WebhookCertPEM: p, WebhookKeyPEM: p},
	}
}

func TestRenderIsDeterministic(t *testing.T) {
	for _, ha := range []bool{false, true} {
		v := values()
		v.HA = ha
		a, err := Render(v)
		if err != nil {
			t.Fatal(err)
		}
		b, err := Render(v)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(a, b) {
			t.Errorf("ha=%v: two renders differ", ha)
		}
		if n := bytes.Count(a, []byte("\n---\n")) + 1; (ha && n != 23) || (!ha && n != 20) {
			t.Errorf("ha=%v: %d documents", ha, n)
		}
		if bytes.Contains(a, []byte("<no value>")) {
			t.Errorf("a template hole rendered empty")
		}
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		change func(*Values)
		want   string
	}{
		{"namespace", func(v *Values) { v.Namespace = "Bad_NS" }, "namespace"},
		{"no tag", func(v *Values) { v.Tag = "" }, "tag is required"},
		{"quote in registry", func(v *Values) { v.Registry = `a"b` }, "registry"},
		{"trust domain", func(v *Values) { v.TrustDomain = "a..b" }, "trust domain"},
		{"cluster domain", func(v *Values) { v.ClusterDomain = "-x" }, "cluster domain"},
		{"pull policy", func(v *Values) { v.ImagePullPolicy = "Sometimes" }, "image pull policy"},
		{"log level", func(v *Values) { v.Proxy.LogLevel = "loud" }, "log level"},
		{"sidecar", func(v *Values) { v.Proxy.Sidecar = "both" }, "sidecar mode"},
		{"quantity", func(v *Values) { v.Proxy.MemoryLimit = "lots" }, "proxy memory limit"},
		{"timeout", func(v *Values) { v.WebhookTimeoutSeconds = 60 }, "webhook timeout"},
		{"pem", func(v *Values) { v.PKI.IssuerKeyPEM = "" }, "issuer key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := values()
			tt.change(&v)
			out, err := Render(v)
			if err == nil || !strings.Contains(err.Error(), tt.want) || out != nil {
				t.Errorf("err = %v, want %q", err, tt.want)
			}
		})
	}
	v := values()
	v.PKI.WebhookCAPEM = "nope"
	if _, err := Render(v); !errors.Is(err, ErrNoPEM) {
		t.Errorf("missing PEM: %v is not ErrNoPEM", err)
	}
}

// TestDockerfileBuildsEveryImage: every image the manifests name has a
// Dockerfile target, and every binary the Dockerfile builds is a main
// package of this repository.
func TestDockerfileBuildsEveryImage(t *testing.T) {
	df, err := os.ReadFile("docker/Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	stages := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^FROM \S+ AS (\S+)$`).FindAllStringSubmatch(string(df), -1) {
		stages[m[1]] = true
	}
	out, err := Render(values())
	if err != nil {
		t.Fatal(err)
	}
	images := regexp.MustCompile(`image: r\.example/m/meshlet-(\w+):v1`).FindAllSubmatch(out, -1)
	if len(images) != len(Components) {
		t.Errorf("%d images in the manifests, want %d", len(images), len(Components))
	}
	for _, want := range append([]string{"proxy", "meshctl"}, Components...) {
		if !stages[want] {
			t.Errorf("no Dockerfile target %q (have %v)", want, stages)
		}
	}
	for _, m := range images {
		if !stages[string(m[1])] {
			t.Errorf("manifest image meshlet-%s has no Dockerfile target", m[1])
		}
	}
	pkgs := regexp.MustCompile(`\./(\S+/cmd/\S+)`).FindAllStringSubmatch(string(df), -1)
	if len(pkgs) != 5 {
		t.Errorf("Dockerfile builds %d binaries, want 5", len(pkgs))
	}
	for _, p := range pkgs {
		if _, err := os.Stat(filepath.Join("..", p[1], "main.go")); err != nil {
			t.Errorf("Dockerfile builds %s: %v", p[1], err)
		}
	}
}
