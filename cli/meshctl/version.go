package meshctl

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/meshlet/meshlet/deploy"
	"github.com/meshlet/meshlet/internal/version"
)

func newVersionCommand(g *globalOptions) *cobra.Command {
	clientOnly := false
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the client's and the control plane's versions",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "Client version: %s\n", version.Version)
			if clientOnly {
				return nil
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), 10*time.Second)
			defer cancel()
			v, err := g.controlPlaneVersion(ctx)
			if err != nil {
				fmt.Fprintf(out, "Control plane version: unavailable\n")
				return fmt.Errorf("version: %w", err)
			}
			fmt.Fprintf(out, "Control plane version: %s\n", v)
			return nil
		},
	}
	cmd.Flags().BoolVar(&clientOnly, "client", false, "print the client version only (no cluster access)")
	return cmd
}

// controlPlaneVersion reads the version meshctl install wrote into the
// mesh config, else the tag of the destination Deployment's image.
func (g *globalOptions) controlPlaneVersion(ctx context.Context) (string, error) {
	c, err := g.client()
	if err != nil {
		return "", err
	}
	cm, err := c.CoreV1().ConfigMaps(g.namespace).Get(ctx, deploy.ConfigMapName, metav1.GetOptions{})
	if err == nil && cm.Data["controlPlaneVersion"] != "" {
		return cm.Data["controlPlaneVersion"], nil
	}
	d, derr := c.AppsV1().Deployments(g.namespace).Get(ctx, "meshlet-"+deploy.Destination, metav1.GetOptions{})
	if derr != nil {
		if err == nil {
			err = derr
		}
		return "", fmt.Errorf("no control plane found in namespace %s: %w", g.namespace, err)
	}
	for _, ct := range d.Spec.Template.Spec.Containers {
		if i := strings.LastIndex(ct.Image, ":"); i >= 0 && !strings.Contains(ct.Image[i:], "/") {
			return ct.Image[i+1:], nil
		}
	}
	return "", fmt.Errorf("control plane in namespace %s has no tagged image", g.namespace)
}
