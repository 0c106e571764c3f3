package meshctl

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/meshlet/meshlet/deploy"
	"github.com/meshlet/meshlet/injector"
	"github.com/meshlet/meshlet/internal/version"
)

// DefaultRegistry is where release images are published.
const DefaultRegistry = "ghcr.io/meshlet"

type installOptions struct {
	values deploy.Values
	pki    pkiOptions
	// now is the clock certificates are issued and checked against; tests
	// fix it.
	now func() time.Time
}

func newInstallCommand(g *globalOptions) *cobra.Command {
	o := &installOptions{now: time.Now}
	v := &o.values
	cmd := &cobra.Command{
		Use:   "install",
		Short: "Print the control plane's manifests (pipe into kubectl apply -f -)",
		Long: `Print every Kubernetes object of the meshlet control plane as YAML.

Nothing is sent to the cluster: review the output, or apply it:

  meshctl install | kubectl apply -f -

Without key-material flags a new trust anchor, issuer and webhook certificate
are generated on every run. The trust anchor's private key is not printed (it
is not needed in the cluster); keep it with --identity-trust-anchor-key-out
to issue a new issuer later. To upgrade an existing mesh, pass the same trust
anchors (and issuer) again, or its proxies stop trusting each other.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			v.Namespace = g.namespace
			v.Version = version.Version
			pki, err := o.pki.build(v.Namespace, v.TrustDomain, v.ClusterDomain, o.now())
			if err != nil {
				return fmt.Errorf("install: %w", err)
			}
			v.PKI = pki
			out, err := deploy.Render(*v)
			if err != nil {
				return fmt.Errorf("install: %w", err)
			}
			if v.Tag == "dev" {
				// A plain `go build` of meshctl; no release images carry it.
				fmt.Fprintf(cmd.ErrOrStderr(), "meshctl install: warning: images tagged %q (a development build): build them with deploy/docker/build.sh or pass --tag\n", v.Tag)
			}
			_, err = cmd.OutOrStdout().Write(out)
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&v.Registry, "registry", DefaultRegistry, "image registry: images are <registry>/meshlet-<component>:<tag>")
	f.StringVar(&v.Tag, "tag", version.Version, "tag of the control-plane images")
	f.StringVar(&v.ImagePullPolicy, "image-pull-policy", "IfNotPresent", "pull policy of every container: Always, IfNotPresent or Never")
	f.StringVar(&v.TrustDomain, "trust-domain", "cluster.local", "trust domain of the mesh's SPIFFE IDs")
	f.StringVar(&v.ClusterDomain, "cluster-domain", "cluster.local", "the cluster's DNS domain")
	f.BoolVar(&v.HA, "ha", false, "high availability: 3 replicas of each component, PodDisruptionBudgets, anti-affinity")
	f.IntVar(&v.WebhookTimeoutSeconds, "webhook-timeout", 10, "seconds the API server waits for the injector (1..30)")

	f.StringVar(&v.Proxy.Image, "proxy-image", "", "proxy image without tag (default <registry>/meshlet-proxy)")
	f.StringVar(&v.Proxy.Version, "proxy-version", "", "proxy image tag (default: --tag)")
	f.StringVar(&v.Proxy.LogLevel, "proxy-log-level", "info", "proxy log level: debug, info, warn or error")
	f.StringVar(&v.Proxy.Sidecar, "proxy-sidecar", string(injector.SidecarNative),
		"how the proxy is added: native (init container with restartPolicy Always, Kubernetes >= 1.29) or container")
	f.StringVar(&v.Proxy.CPURequest, "proxy-cpu-request", injector.DefaultProxyCPURequest, "proxy CPU request")
	f.StringVar(&v.Proxy.CPULimit, "proxy-cpu-limit", "", "proxy CPU limit (default none: a limit throttles every request)")
	f.StringVar(&v.Proxy.MemoryRequest, "proxy-memory-request", injector.DefaultProxyMemoryRequest, "proxy memory request")
	f.StringVar(&v.Proxy.MemoryLimit, "proxy-memory-limit", injector.DefaultProxyMemoryLimit, "proxy memory limit")

	p := &o.pki
	f.StringVar(&p.trustAnchorsFile, "identity-trust-anchors-file", "", "PEM trust anchor certificate(s) (default: generate one)")
	f.StringVar(&p.trustAnchorKey, "identity-trust-anchor-key-file", "", "PEM key of the first trust anchor: generate a new issuer from it")
	f.StringVar(&p.trustAnchorKeyOut, "identity-trust-anchor-key-out", "", "write a generated trust anchor's key to this file (mode 0600)")
	f.StringVar(&p.issuerCertFile, "identity-issuer-certificate-file", "", "PEM issuer certificate, signed by a trust anchor")
	f.StringVar(&p.issuerKeyFile, "identity-issuer-key-file", "", "PEM issuer private key")
	f.DurationVar(&p.anchorLifetime, "identity-trust-anchor-lifetime", 10*365*24*time.Hour, "lifetime of a generated trust anchor")
	f.DurationVar(&p.issuerLifetime, "identity-issuer-lifetime", 365*24*time.Hour, "lifetime of a generated issuer")
	f.StringVar(&p.webhookCAFile, "webhook-ca-file", "", "PEM CA the API server trusts the injector with (default: generate)")
	f.StringVar(&p.webhookCertFile, "webhook-cert-file", "", "PEM injector serving certificate for meshlet-injector.<namespace>.svc")
	f.StringVar(&p.webhookKeyFile, "webhook-key-file", "", "PEM injector serving key")
	return cmd
}
