package meshctl

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/client-go/kubernetes"
)

type checkOptions struct {
	pre          bool
	proxy        bool
	proxyNS      string
	proxyPort    int
	wait         time.Duration
	minValidity  time.Duration
	dialTimeout  time.Duration
	now          func() time.Time
	pollInterval time.Duration
}

func newCheckCommand(g *globalOptions) *cobra.Command {
	o := &checkOptions{now: time.Now, pollInterval: 2 * time.Second}
	cmd := &cobra.Command{
		Use:   "check",
		Short: "Check that the cluster can run the mesh (--pre) or that the mesh is healthy",
		Long: `Run a list of checks against the cluster and print one line per check:
√ passed, ‼ warning (does not fail), × failed (with the reason below it).
The exit code is 1 when any check failed.

  meshctl check --pre    before install: API reachable, version, permissions
  meshctl check          after install: control plane, webhook, certificates
  meshctl check --proxy  also every meshed pod's proxy certificate`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			r := &checkRun{g: g, o: o, out: cmd.OutOrStdout()}
			if !r.run(cmd.Context()) {
				return errSilent
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.BoolVar(&o.pre, "pre", false, "run the pre-install checks instead")
	f.BoolVar(&o.proxy, "proxy", false, "also check the data plane: each meshed pod's proxy")
	f.StringVar(&o.proxyNS, "proxy-namespace", "", "with --proxy: only pods in this namespace (default: all)")
	f.DurationVar(&o.wait, "wait", 0, "retry checks that can become true (Deployments available) for this long")
	f.DurationVar(&o.minValidity, "min-validity", 60*24*time.Hour, "fail when the trust anchor expires sooner; warn for the issuer and webhook certificates")
	f.DurationVar(&o.dialTimeout, "proxy-dial-timeout", 2*time.Second, "with --proxy: connect timeout per pod")
	f.IntVar(&o.proxyPort, "proxy-port", 4143, "with --proxy: the proxies' inbound (mTLS) port")
	return cmd
}

// checkRun holds one run's state: the client once made, and counts.
type checkRun struct {
	g      *globalOptions
	o      *checkOptions
	out    io.Writer
	client kubernetes.Interface
	failed int
	warned int
	header string
}

// warning is returned by a check that did not pass but should not fail
// the run.
type warning struct{ msg string }

func (w warning) Error() string { return w.msg }

func (r *checkRun) section(name string) {
	if r.header != "" {
		fmt.Fprintln(r.out)
	}
	r.header = name
	fmt.Fprintf(r.out, "%s\n%s\n", name, dashes(len(name)))
}

func dashes(n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = '-'
	}
	return string(b)
}

// check runs fn and prints its line. fn returns a detail appended to the
// passing line (may be ""), or an error: a warning prints ‼, anything
// else ×. It returns whether the check passed (warnings pass).
func (r *checkRun) check(ctx context.Context, desc string, fn func(ctx context.Context) (string, error)) bool {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second+r.o.wait)
	defer cancel()
	detail, err := fn(ctx)
	var w warning
	switch {
	case err == nil:
		if detail != "" {
			desc += " (" + detail + ")"
		}
		fmt.Fprintf(r.out, "√ %s\n", desc)
		return true
	case errors.As(err, &w):
		r.warned++
		fmt.Fprintf(r.out, "‼ %s\n    %s\n", desc, w.msg)
		return true
	default:
		r.failed++
		fmt.Fprintf(r.out, "× %s\n    %v\n", desc, err)
		return false
	}
}

// retry runs fn until it succeeds or --wait has passed.
func (r *checkRun) retry(ctx context.Context, fn func(ctx context.Context) (string, error)) func(context.Context) (string, error) {
	return func(ctx context.Context) (string, error) {
		deadline := time.Now().Add(r.o.wait)
		for {
			d, err := fn(ctx)
			var w warning
			if err == nil || errors.As(err, &w) || time.Now().After(deadline) {
				return d, err
			}
			select {
			case <-ctx.Done():
				return d, err
			case <-time.After(r.o.pollInterval):
			}
		}
	}
}

func (r *checkRun) run(ctx context.Context) bool {
	if r.apiChecks(ctx) {
		if r.o.pre {
			r.preChecks(ctx)
		} else {
			r.postChecks(ctx)
			if r.o.proxy {
				r.proxyChecks(ctx)
			}
		}
	}
	fmt.Fprintln(r.out)
	if r.failed > 0 {
		fmt.Fprintf(r.out, "Status check results are × (%d failed)\n", r.failed)
		return false
	}
	if r.warned > 0 {
		fmt.Fprintf(r.out, "Status check results are √ (%d warning(s))\n", r.warned)
		return true
	}
	fmt.Fprintln(r.out, "Status check results are √")
	return true
}
