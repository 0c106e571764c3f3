package meshctl

import (
	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"

	"github.com/meshlet/meshlet/cli/inject"
	"github.com/meshlet/meshlet/injector"
)

func newUninjectCommand(g *globalOptions) *cobra.Command {
	recursive := false
	cmd := &cobra.Command{
		Use:   "uninject FILE|DIR|- ...",
		Short: "Remove the mesh from the workloads in Kubernetes YAML",
		Long: `Undo meshctl inject (either mode) on Kubernetes YAML: remove the
meshlet.io/inject: enabled annotation (an explicit "disabled" stays), and the proxy, init container, volumes and
annotations the injector added. Everything else is printed as it was; on any
error nothing is printed to stdout.`,
		Example: `  kubectl get deploy web -o yaml | meshctl uninject - | kubectl apply -f -`,
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runTransform(cmd, args, recursive, &inject.Transformer{Pod: uninjectPod, Verb: "uninjected"})
		},
	}
	cmd.Flags().BoolVarP(&recursive, "recursive", "R", false, "also read subdirectories of directory arguments")
	return cmd
}

func uninjectPod(pod *corev1.Pod) (string, error) {
	injector.Uninject(&pod.ObjectMeta, &pod.Spec)
	// Only "enabled" is meshctl inject's doing; "disabled" is an opt-out
	// the user wrote, and keeps meaning something after uninject.
	if pod.Annotations[injector.AnnotationInject] == injector.InjectEnabled {
		delete(pod.Annotations, injector.AnnotationInject)
		if len(pod.Annotations) == 0 {
			pod.Annotations = nil
		}
	}
	return "", nil
}
