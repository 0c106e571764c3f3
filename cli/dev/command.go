package dev

import (
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"
)

// NewCommand returns `meshctl dev` and its subcommands.
func NewCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run the whole mesh on this machine, without Kubernetes",
		Long: `Run the mesh's control plane and proxies as local processes on loopback: a local CA,
service discovery from a file, a sidecar proxy in front of every service instance and an
outbound proxy behind every upstream address. See docs/dev.md.`,
	}
	cmd.AddCommand(newUpCommand(), newStatusCommand(), newDemoCommand())
	return cmd
}

type upFlags struct {
	file     string
	stateDir string
	grace    time.Duration
}

func newUpCommand() *cobra.Command {
	var f upFlags
	cmd := &cobra.Command{
		Use:   "up -f mesh.yaml",
		Short: "Start a local mesh and run it until Ctrl-C",
		Example: `  meshctl dev up -f mesh.yaml
  curl http://127.0.0.1:18080/      # an upstream's listen address, through the mesh`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			cmd.SilenceUsage = true
			out := cmd.OutOrStdout()
			err := Up(ctx, Options{File: f.file, StateDir: f.stateDir, Out: out, Grace: f.grace,
				Ready: func(Status) {
					cmd.Println("\nThe mesh is up. `meshctl dev status` shows live traffic; Ctrl-C stops everything.")
				}})
			if err == nil {
				cmd.Println("Stopped.")
			}
			return err
		},
	}
	cmd.Flags().StringVarP(&f.file, "file", "f", "mesh.yaml", "the mesh file (docs/dev.md)")
	cmd.Flags().StringVar(&f.stateDir, "state-dir", "", "where the CA, tokens, generated files and logs go (default <user cache dir>/meshlet/dev)")
	cmd.Flags().DurationVar(&f.grace, "grace", 5*time.Second, "how long stopping proxies may drain their connections")
	return cmd
}

func newStatusCommand() *cobra.Command {
	var stateDir string
	var interval time.Duration
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show live traffic of the running local mesh: rate, success, latency, identities",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cmd.SilenceUsage = true
			return StatusReport(cmd.Context(), stateDir, interval, cmd.OutOrStdout())
		},
	}
	cmd.Flags().StringVar(&stateDir, "state-dir", "", "the state dir `meshctl dev up` was given")
	cmd.Flags().DurationVar(&interval, "interval", time.Second, "how long to measure rates over")
	return cmd
}

func newDemoCommand() *cobra.Command {
	var opt DemoOptions
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run a demo service (one slow instance, one flaky) through a local mesh under load, and report",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			cmd.SilenceUsage = true
			opt.Out = cmd.OutOrStdout()
			return Demo(ctx, opt)
		},
	}
	cmd.Flags().DurationVar(&opt.Duration, "duration", 20*time.Second, "how long to send load")
	cmd.Flags().IntVar(&opt.Rate, "rate", 200, "requests per second")
	cmd.Flags().StringVar(&opt.StateDir, "state-dir", "", "keep the mesh's files and logs here (default: a temporary folder, removed)")
	return cmd
}
