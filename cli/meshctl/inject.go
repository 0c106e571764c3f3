package meshctl

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"

	"github.com/meshlet/meshlet/cli/inject"
	"github.com/meshlet/meshlet/injector"
)

type injectOptions struct {
	manual     bool
	meshConfig string
	recursive  bool
}

func newInjectCommand(g *globalOptions) *cobra.Command {
	o := &injectOptions{}
	cmd := &cobra.Command{
		Use:   "inject FILE|DIR|- ...",
		Short: "Add the mesh to the workloads in Kubernetes YAML",
		Long: `Read Kubernetes YAML (files, directories, or - for stdin) and print it with
every workload's pod template meshed. Pods, Deployments, StatefulSets,
DaemonSets, ReplicaSets, Jobs, CronJobs and ReplicationControllers are
changed, also inside a List; every other document is printed as it was.

By default the pod template gets the annotation meshlet.io/inject: enabled
and the injector webhook adds the proxy when the pods are created. With
--manual the proxy itself is written into the YAML, using the mesh config of
the installed control plane (or --mesh-config, e.g. saved install output).

A summary line per object goes to stderr. On any error nothing is printed to
stdout, so a failed run never applies half a manifest.`,
		Example: `  meshctl inject deploy.yaml | kubectl apply -f -
  kubectl get deploy -o yaml | meshctl inject - | kubectl apply -f -
  meshctl inject --manual --mesh-config install.yaml k8s/`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			pod := annotatePod
			verb := "injected"
			if o.manual {
				data, err := o.loadMeshConfig(cmd, g)
				if err != nil {
					return fmt.Errorf("inject: %w", err)
				}
				cfg, err := injectorConfig(data)
				if err != nil {
					return fmt.Errorf("inject: %w", err)
				}
				pod = manualPod(cfg)
			}
			return runTransform(cmd, args, o.recursive, &inject.Transformer{Pod: pod, Verb: verb})
		},
	}
	f := cmd.Flags()
	f.BoolVar(&o.manual, "manual", false, "write the proxy into the YAML instead of the inject annotation")
	f.StringVar(&o.meshConfig, "mesh-config", "", "with --manual: a YAML file holding the meshlet-config ConfigMap (default: read it from the cluster)")
	f.BoolVarP(&o.recursive, "recursive", "R", false, "also read subdirectories of directory arguments")
	return cmd
}

func (o *injectOptions) loadMeshConfig(cmd *cobra.Command, g *globalOptions) (map[string]string, error) {
	if o.meshConfig != "" {
		return meshConfigFromFile(o.meshConfig)
	}
	return g.meshConfigFromCluster(cmd.Context())
}

// runTransform is inject's and uninject's common body: read every input,
// transform, and only then write stdout (all of it) and the summary.
func runTransform(cmd *cobra.Command, args []string, recursive bool, t *inject.Transformer) error {
	t.Metrics = inject.NewMetrics(prometheus.NewRegistry())
	inputs, err := readInputs(args, cmd.InOrStdin(), recursive)
	if err != nil {
		return fmt.Errorf("%s: %w", cmd.Name(), err)
	}
	out, reports, err := transformAll(t, inputs)
	if err != nil {
		return err
	}
	if _, err := cmd.OutOrStdout().Write(out); err != nil {
		return err
	}
	for _, r := range reports {
		fmt.Fprintln(cmd.ErrOrStderr(), r.String())
	}
	return nil
}

// meshEnabled is the namespace the user implies by running meshctl
// inject: the workload should be meshed unless it says otherwise, or can
// never be (host network, kube-system, the control plane).
var meshEnabled = map[string]string{injector.AnnotationInject: injector.InjectEnabled}

// annotatePod sets meshlet.io/inject: enabled on the pod template.
func annotatePod(pod *corev1.Pod) (string, error) {
	d := injector.Decide(&pod.ObjectMeta, &pod.Spec, pod.Namespace, meshEnabled, injector.Config{})
	if !d.Inject {
		return string(d.Reason), nil
	}
	if pod.Annotations == nil {
		pod.Annotations = map[string]string{}
	}
	pod.Annotations[injector.AnnotationInject] = injector.InjectEnabled
	return "", nil
}

// manualPod writes the proxy into the pod template with the injector's
// own code, as the webhook would at admission.
func manualPod(cfg injector.Config) inject.PodFunc {
	return func(pod *corev1.Pod) (string, error) {
		d := injector.Decide(&pod.ObjectMeta, &pod.Spec, pod.Namespace, meshEnabled, cfg)
		if !d.Inject {
			return string(d.Reason), nil
		}
		return "", injector.InjectPodSpec(&pod.ObjectMeta, &pod.Spec, pod.Namespace, cfg)
	}
}
