// Package meshctl is the meshctl command line: every subcommand as a cobra
// command built by a function, so tests run them in-process and capture
// their output. cli/cmd/meshctl only calls Main.
package meshctl

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/meshlet/meshlet/deploy"
)

// globalOptions are the flags every command shares.
type globalOptions struct {
	// kubeconfig file; empty: $KUBECONFIG, then ~/.kube/config.
	kubeconfig string
	// kubeContext overrides the kubeconfig's current context.
	kubeContext string
	// namespace of the control plane.
	namespace string
}

// NewCommand returns the meshctl root command with every subcommand.
// `meshctl dev` (cli/dev) is added with AddCommand by whoever builds the
// binary, so this package does not depend on it.
func NewCommand() *cobra.Command {
	g := &globalOptions{}
	root := &cobra.Command{
		Use:   "meshctl",
		Short: "Install, check and use the meshlet service mesh",
		Long: `meshctl installs the meshlet control plane, adds the proxy to workloads
and checks that the mesh is healthy.

  meshctl check --pre                    # can this cluster take the mesh?
  meshctl install | kubectl apply -f -   # install the control plane
  meshctl check                          # is it healthy?
  meshctl inject app.yaml | kubectl apply -f -`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	f := root.PersistentFlags()
	f.StringVar(&g.kubeconfig, "kubeconfig", "", "path to the kubeconfig file (default: $KUBECONFIG, then ~/.kube/config)")
	f.StringVar(&g.kubeContext, "context", "", "kubeconfig context to use (default: its current context)")
	f.StringVarP(&g.namespace, "namespace", "n", deploy.DefaultNamespace, "namespace of the meshlet control plane")
	root.AddCommand(
		newInstallCommand(g),
		newUninstallCommand(g),
		newInjectCommand(g),
		newUninjectCommand(g),
		newCheckCommand(g),
		newVersionCommand(g),
	)
	return root
}

// errSilent is returned by commands that already printed why they failed
// (meshctl check prints its × lines); Main then only sets the exit code.
var errSilent = errors.New("meshctl: failed")

// Main runs meshctl with args (without the program name) and returns the
// process exit code: 0 on success, 1 on any failure.
func Main(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, extra ...*cobra.Command) int {
	root := NewCommand()
	root.AddCommand(extra...)
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	if err := root.ExecuteContext(ctx); err != nil {
		if !errors.Is(err, errSilent) {
			fmt.Fprintln(stderr, "meshctl:", err)
		}
		return 1
	}
	return 0
}
