package meshctl

import (
	"bytes"
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"

	"github.com/meshlet/meshlet/deploy"
	"github.com/meshlet/meshlet/internal/version"
)

// placeholderPEM stands in for key material when rendering only to learn
// the objects' names.
const placeholderPEM = "-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n"

func newUninstallCommand(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "uninstall",
		Short: "Print the control plane's objects to delete (pipe into kubectl delete -f -)",
		Long: `Print the objects meshctl install creates, as a list to delete:

  meshctl uninstall | kubectl delete --ignore-not-found -f -

The cluster-wide objects come first (the webhook configuration, so no new pod
waits on a disappearing injector, then the RBAC), and the namespace last: its
deletion removes everything in it. Pods already meshed keep their proxy until
they are re-created from uninjected manifests (meshctl uninject).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			p := placeholderPEM
			all, err := deploy.Render(deploy.Values{
				Namespace: g.namespace, Version: version.Version, Registry: "x", Tag: "x",
				TrustDomain: "cluster.local", ClusterDomain: "cluster.local",
				PKI: deploy.PKI{TrustAnchorsPEM: p, IssuerCertPEM: p, IssuerKeyPEM: p, WebhookCAPEM: p, WebhookCertPEM: p, WebhookKeyPEM: p},
			})
			if err != nil {
				return fmt.Errorf("uninstall: %w", err)
			}
			out, err := deletionList(all)
			if err != nil {
				return fmt.Errorf("uninstall: %w", err)
			}
			_, err = cmd.OutOrStdout().Write(out)
			return err
		},
	}
}

type objectRef struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Metadata   struct {
		Name      string `yaml:"name"`
		Namespace string `yaml:"namespace,omitempty"`
	} `yaml:"metadata"`
}

// deletionList keeps, from the install manifests, the cluster-scoped
// objects (those without a namespace), reversed (webhook first), then the
// Namespace.
func deletionList(manifests []byte) ([]byte, error) {
	dec := yaml.NewDecoder(bytes.NewReader(manifests))
	var cluster []objectRef
	var ns *objectRef
	for {
		var o objectRef
		err := dec.Decode(&o)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("read install manifests: %w", err)
		}
		switch {
		case o.Kind == "Namespace":
			o := o
			ns = &o
		case o.Metadata.Namespace == "" && o.Kind != "":
			cluster = append(cluster, o)
		}
	}
	if ns == nil {
		return nil, fmt.Errorf("no Namespace in the install manifests")
	}
	var b bytes.Buffer
	for i := len(cluster) - 1; i >= 0; i-- {
		writeRef(&b, cluster[i])
	}
	writeRef(&b, *ns)
	return b.Bytes(), nil
}

func writeRef(b *bytes.Buffer, o objectRef) {
	fmt.Fprintf(b, "---\napiVersion: %s\nkind: %s\nmetadata:\n  name: %s\n", o.APIVersion, o.Kind, o.Metadata.Name)
}
