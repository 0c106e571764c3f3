package meshctl

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/meshlet/meshlet/injector/webhook"
)

// TestMeshConfigReadByInjector: the ConfigMap install writes is read, as
// mounted files, by meshlet-injector's own config loader (strict), and by
// meshctl inject --manual, to the same injector.Config.
func TestMeshConfigReadByInjector(t *testing.T) {
	data, err := meshConfigFromFile("testdata/golden/install.yaml")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for k, v := range data {
		if err := os.WriteFile(filepath.Join(dir, k), []byte(v), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// The paths the injector Deployment passes (deploy/templates/50-injector.yaml).
	fromWebhook, err := webhook.Config{
		MeshConfigFile:   filepath.Join(dir, "injector.yaml"),
		TrustAnchorsFile: filepath.Join(dir, "trustAnchorsPEM"),
	}.MeshConfig()
	if err != nil {
		t.Fatalf("meshlet-injector cannot read the installed mesh config: %v", err)
	}
	fromCLI, err := injectorConfig(data)
	if err != nil {
		t.Fatal(err)
	}
	if fromWebhook != fromCLI {
		t.Errorf("webhook and meshctl read different configs:\n%+v\n%+v", fromWebhook, fromCLI)
	}
	if fromCLI.ProxyImage != "ghcr.io/meshlet/meshlet-proxy" || fromCLI.ProxyVersion != "v0.0.0-test" ||
		!strings.Contains(fromCLI.TrustAnchorsPEM, "BEGIN CERTIFICATE") {
		t.Errorf("config %+v", fromCLI)
	}
}

func TestMeshConfigBad(t *testing.T) {
	tests := []struct {
		name string
		data map[string]string
		want string
	}{
		{"no injector.yaml", map[string]string{"trustAnchorsPEM": "x"}, "no injector.yaml key"},
		{"unknown field", map[string]string{"injector.yaml": "proxyImage: a\nproxyImag: b\n", "trustAnchorsPEM": "x"}, "unknown field"},
		{"no trust anchors", map[string]string{"injector.yaml": "proxyImage: a\n"}, "trust anchors"},
		{"bad quantity", map[string]string{"injector.yaml": "proxyImage: a\nproxyCPURequest: lots\n", "trustAnchorsPEM": "x"}, "CPU request"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := injectorConfig(tt.data)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want %q", err, tt.want)
			}
		})
	}
}

// TestExampleMeshConfigIsCurrent: deploy/examples/mesh-config.yaml (used
// by docs/cli.md) is the ConfigMap install renders today.
func TestExampleMeshConfigIsCurrent(t *testing.T) {
	example, err := meshConfigFromFile("../../deploy/examples/mesh-config.yaml")
	if err != nil {
		t.Fatal(err)
	}
	installed, err := meshConfigFromFile("testdata/golden/install.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(example) != len(installed) {
		t.Fatalf("example has %d keys, install %d: copy the ConfigMap from testdata/golden/install.yaml", len(example), len(installed))
	}
	for k, v := range installed {
		if example[k] != v {
			t.Errorf("example key %s = %q, install renders %q", k, example[k], v)
		}
	}
}
