package proxy

import (
	"flag"
	"os"
	"strings"
	"testing"
)

// TestDocsListEverySetting keeps docs/proxy.md's configuration table in
// step with the flags: every flag's variable, name and default are there.
func TestDocsListEverySetting(t *testing.T) {
	doc, err := os.ReadFile("../docs/proxy.md")
	if err != nil {
		t.Fatal(err)
	}
	c := DefaultConfig()
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	c.RegisterFlags(fs)
	n := 0
	fs.VisitAll(func(f *flag.Flag) {
		n++
		row := ""
		for _, line := range strings.Split(string(doc), "\n") {
			if strings.HasPrefix(line, "| `"+EnvName(f.Name)+"` | `--"+f.Name+"` |") {
				row = line
			}
		}
		if row == "" {
			t.Errorf("docs/proxy.md has no row for %s / --%s", EnvName(f.Name), f.Name)
			return
		}
		def := f.DefValue
		switch {
		case def == "":
			def = "*(empty)*"
		case def == "0s":
			def = "`0`"
		default:
			def = "`" + def + "`"
		}
		if !strings.Contains(row, "| "+def) {
			t.Errorf("docs/proxy.md row for --%s does not give the default %s: %s", f.Name, def, row)
		}
	})
	if n < 20 {
		t.Fatalf("only %d flags registered", n)
	}
}
