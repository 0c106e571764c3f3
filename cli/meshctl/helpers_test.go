package meshctl

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/golden")

// result is one in-process meshctl run.
type result struct {
	stdout, stderr string
	code           int
}

// meshctl runs the command line args (split on spaces unless given as
// several strings) with stdin.
func meshctl(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	if len(args) == 1 {
		args = strings.Fields(args[0])
	}
	var out, errb bytes.Buffer
	code := Main(context.Background(), args, strings.NewReader(stdin), &out, &errb)
	return result{out.String(), errb.String(), code}
}

// pkiFlags install the fixed test PKI (testdata/pki, valid for 100 years)
// so install output is the same on every run.
const pkiFlags = "--identity-trust-anchors-file testdata/pki/trust-anchor.crt " +
	"--identity-issuer-certificate-file testdata/pki/issuer.crt --identity-issuer-key-file testdata/pki/issuer.key " +
	"--webhook-ca-file testdata/pki/webhook-ca.crt --webhook-cert-file testdata/pki/webhook.crt --webhook-key-file testdata/pki/webhook.key"

// golden compares got with testdata/golden/name, or rewrites it with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", "golden", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs from the golden file (go test -update rewrites it):\n%s", name, diff(string(want), got))
	}
}

// diff shows the first differing line with some context.
func diff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	for i := 0; i < len(w) || i < len(g); i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			return fmt.Sprintf("line %d:\n- %s\n+ %s", i+1, wl, gl)
		}
	}
	return "(no line differs)"
}
