package meshctl

import (
	"strings"
	"testing"
)

func TestCompletionAndHelp(t *testing.T) {
	for _, shell := range []string{"bash", "zsh", "fish", "powershell"} {
		r := meshctl(t, "", "completion "+shell)
		if r.code != 0 || !strings.Contains(r.stdout, "meshctl") {
			t.Errorf("completion %s: exit %d, %d bytes", shell, r.code, len(r.stdout))
		}
	}
	r := meshctl(t, "", "--help")
	for _, cmd := range []string{"install", "uninstall", "inject", "uninject", "check", "version", "completion"} {
		if !strings.Contains(r.stdout, "\n  "+cmd+" ") {
			t.Errorf("help lacks %s:\n%s", cmd, r.stdout)
		}
	}
	r = meshctl(t, "", "install extra-arg")
	if r.code != 1 || r.stdout != "" || !strings.Contains(r.stderr, "unknown command") && !strings.Contains(r.stderr, "accepts 0 arg") {
		t.Errorf("install with an argument: %+v", r)
	}
	r = meshctl(t, "", "inject")
	if r.code != 1 || !strings.Contains(r.stderr, "requires at least 1 arg") {
		t.Errorf("inject without arguments: %+v", r)
	}
}
