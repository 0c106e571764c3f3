package capture

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"
)

// Runner executes argv and returns its combined output.
type Runner func(ctx context.Context, argv []string) ([]byte, error)

// ExecRunner runs argv[0] from PATH.
func ExecRunner(ctx context.Context, argv []string) ([]byte, error) {
	return exec.CommandContext(ctx, argv[0], argv[1:]...).CombinedOutput()
}

// ErrCommand wraps every failed iptables command.
var ErrCommand = errors.New("iptables command failed")

// Apply programs the capture rules for IPv4, and for IPv6 when c.IPv6 is set
// and ip6tables works. Running it again rewrites the meshlet chains and
// leaves exactly one jump to each, so the result is the same.
func Apply(ctx context.Context, c Config) error {
	if err := c.Validate(); err != nil {
		return err
	}
	x := c.executor()
	for _, f := range c.families(ctx, x) {
		if err := x.apply(ctx, c, f); err != nil {
			return err
		}
	}
	return nil
}

// Remove deletes the jumps and the meshlet chains. Missing rules and chains
// are not an error: Remove after Remove succeeds.
func Remove(ctx context.Context, c Config) error {
	x := c.executor()
	for _, f := range c.families(ctx, x) {
		if err := x.remove(ctx, f); err != nil {
			return err
		}
	}
	return nil
}

type executor struct {
	run    Runner
	log    io.Writer
	dryRun bool
}

func (c Config) executor() *executor {
	x := &executor{run: c.Run, log: c.Log, dryRun: c.DryRun}
	if x.run == nil {
		x.run = ExecRunner
	}
	if x.log == nil {
		x.log = io.Discard
	}
	return x
}

// families returns the families to program: IPv4 always, IPv6 when asked
// for and usable. A dry run assumes ip6tables works.
func (c Config) families(ctx context.Context, x *executor) []family {
	fs := []family{ipv4}
	if !c.IPv6 {
		return fs
	}
	if !x.dryRun {
		if out, err := x.run(ctx, []string{ipv6.binary, "-w", "-t", "nat", "-S", "OUTPUT"}); err != nil {
			fmt.Fprintf(x.log, "# ip6tables nat table not usable, IPv6 traffic is not captured: %v %s\n", err, bytes.TrimSpace(out))
			return fs
		}
	}
	return append(fs, ipv6)
}

// cmd runs one iptables command (or prints it in a dry run).
func (x *executor) cmd(ctx context.Context, f family, args ...string) error {
	argv := append([]string{f.binary, "-w", "-t", "nat"}, args...)
	fmt.Fprintln(x.log, strings.Join(argv, " "))
	if x.dryRun {
		return nil
	}
	out, err := x.run(ctx, argv)
	if err != nil {
		return fmt.Errorf("capture: %w: %s: %v: %s", ErrCommand, strings.Join(argv, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

// probe runs a read-only check quietly; it reports whether it succeeded.
func (x *executor) probe(ctx context.Context, f family, args ...string) bool {
	if x.dryRun {
		return false
	}
	argv := append([]string{f.binary, "-w", "-t", "nat"}, args...)
	_, err := x.run(ctx, argv)
	return err == nil
}

func (x *executor) apply(ctx context.Context, c Config, f family) error {
	pre, out := c.chainRules(f)
	for _, ch := range []struct {
		name  string
		rules [][]string
	}{{ChainPrerouting, pre}, {ChainOutput, out}} {
		if !x.probe(ctx, f, "-S", ch.name) {
			if err := x.cmd(ctx, f, "-N", ch.name); err != nil {
				return err
			}
		}
		if err := x.cmd(ctx, f, "-F", ch.name); err != nil {
			return err
		}
		for _, r := range ch.rules {
			if err := x.cmd(ctx, f, append([]string{"-A", ch.name}, r...)...); err != nil {
				return err
			}
		}
	}
	// Jumps last, so a half-written chain is never reachable on first run.
	for _, j := range jumps {
		if x.probe(ctx, f, "-C", j.from, "-j", j.to) {
			continue
		}
		if err := x.cmd(ctx, f, "-I", j.from, "1", "-j", j.to); err != nil {
			return err
		}
	}
	return nil
}

// maxJumpDeletes bounds the loop that removes duplicated jumps (left by
// older, non-idempotent tools).
const maxJumpDeletes = 16

func (x *executor) remove(ctx context.Context, f family) error {
	for _, j := range jumps {
		if x.dryRun {
			_ = x.cmd(ctx, f, "-D", j.from, "-j", j.to)
			continue
		}
		for i := 0; i < maxJumpDeletes && x.probe(ctx, f, "-C", j.from, "-j", j.to); i++ {
			if err := x.cmd(ctx, f, "-D", j.from, "-j", j.to); err != nil {
				return err
			}
		}
	}
	for _, ch := range []string{ChainPrerouting, ChainOutput} {
		if !x.dryRun && !x.probe(ctx, f, "-S", ch) {
			continue
		}
		if err := x.cmd(ctx, f, "-F", ch); err != nil {
			return err
		}
		if err := x.cmd(ctx, f, "-X", ch); err != nil {
			return err
		}
	}
	return nil
}
