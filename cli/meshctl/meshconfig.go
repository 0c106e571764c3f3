package meshctl

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"go.yaml.in/yaml/v3"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/meshlet/meshlet/deploy"
	"github.com/meshlet/meshlet/injector"
)

// injectorConfig reads the mesh config ConfigMap's data: injector.yaml
// (an injector.Config, parsed strictly as meshlet-injector does) and the
// trust anchors beside it (deploy/templates/20-config.yaml).
func injectorConfig(data map[string]string) (injector.Config, error) {
	var c injector.Config
	raw, ok := data[deploy.InjectorConfigKey]
	if !ok {
		return c, fmt.Errorf("mesh config: no %s key", deploy.InjectorConfigKey)
	}
	if err := sigsyaml.UnmarshalStrict([]byte(raw), &c); err != nil {
		return c, fmt.Errorf("mesh config: %s: %w", deploy.InjectorConfigKey, err)
	}
	if c.TrustAnchorsPEM == "" {
		c.TrustAnchorsPEM = data[deploy.TrustAnchorsKey]
	}
	c = c.WithDefaults()
	if err := c.Validate(); err != nil {
		return c, fmt.Errorf("mesh config: %w", err)
	}
	return c, nil
}

// meshConfigFromFile finds the meshlet-config ConfigMap in a YAML stream,
// typically saved `meshctl install` output.
func meshConfigFromFile(path string) (map[string]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("mesh config: %w", err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	for {
		var o struct {
			Kind     string `yaml:"kind"`
			Metadata struct {
				Name string `yaml:"name"`
			} `yaml:"metadata"`
			Data map[string]string `yaml:"data"`
		}
		err := dec.Decode(&o)
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("mesh config: %s has no ConfigMap %s", path, deploy.ConfigMapName)
		}
		if err != nil {
			return nil, fmt.Errorf("mesh config: %s: %w", path, err)
		}
		if o.Kind == "ConfigMap" && o.Metadata.Name == deploy.ConfigMapName {
			return o.Data, nil
		}
	}
}

// meshConfigFromCluster reads the installed mesh config.
func (g *globalOptions) meshConfigFromCluster(ctx context.Context) (map[string]string, error) {
	c, err := g.client()
	if err != nil {
		return nil, err
	}
	cm, err := c.CoreV1().ConfigMaps(g.namespace).Get(ctx, deploy.ConfigMapName, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("mesh config: read ConfigMap %s/%s (is meshlet installed? or pass --mesh-config): %w",
			g.namespace, deploy.ConfigMapName, err)
	}
	return cm.Data, nil
}
