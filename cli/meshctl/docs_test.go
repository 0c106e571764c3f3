package meshctl

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"
)

// TestDocExamples runs every ```console block of the docs: each "$ meshctl
// ..." line is run from the repository root and its output (stdout, then
// stderr) must be the lines below it. "..." stands for any lines; a last
// line "[exit N]" is the expected exit code (default 0). A command may
// pipe into another meshctl and drop a stream with >/dev/null or
// 2>/dev/null. Blocks marked ```sh are illustrations that need a cluster
// and are not run.
func TestDocExamples(t *testing.T) {
	t.Chdir("../..")
	ran := 0
	for _, doc := range []string{"docs/cli.md", "docs/install.md"} {
		b, err := os.ReadFile(doc)
		if err != nil {
			t.Fatal(err)
		}
		for _, ex := range consoleExamples(string(b)) {
			t.Run(fmt.Sprintf("%s:%d", doc, ex.line), func(t *testing.T) {
				got, code := runDocCommand(t, ex.cmd)
				if code != ex.exit {
					t.Errorf("$ %s\nexit %d, want %d; output:\n%s", ex.cmd, code, ex.exit, got)
				}
				if !matchLines(ex.want, splitLines(got)) {
					t.Errorf("$ %s\noutput:\n%s\nwant:\n%s", ex.cmd, got, strings.Join(ex.want, "\n"))
				}
			})
			ran++
		}
	}
	if ran < 5 {
		t.Errorf("only %d examples found in the docs", ran)
	}
}

type docExample struct {
	line int
	cmd  string
	want []string
	exit int
}

var exitLine = regexp.MustCompile(`^\[exit (\d+)\]$`)

func consoleExamples(md string) []docExample {
	var (
		out     []docExample
		in      bool
		cur     *docExample
		lineNum int
	)
	flush := func() {
		if cur != nil {
			if n := len(cur.want); n > 0 {
				if m := exitLine.FindStringSubmatch(cur.want[n-1]); m != nil {
					fmt.Sscan(m[1], &cur.exit)
					cur.want = cur.want[:n-1]
				}
			}
			out = append(out, *cur)
			cur = nil
		}
	}
	sc := bufio.NewScanner(strings.NewReader(md))
	for sc.Scan() {
		lineNum++
		l := sc.Text()
		switch {
		case !in && l == "```console":
			in = true
		case in && l == "```":
			flush()
			in = false
		case in && strings.HasPrefix(l, "$ "):
			flush()
			cur = &docExample{line: lineNum, cmd: strings.TrimPrefix(l, "$ ")}
		case in && cur != nil:
			cur.want = append(cur.want, l)
		}
	}
	return out
}

// runDocCommand runs a pipeline of meshctl commands.
func runDocCommand(t *testing.T, cmdline string) (string, int) {
	t.Helper()
	var stdin []byte
	var all bytes.Buffer
	code := 0
	for _, stage := range strings.Split(cmdline, " | ") {
		args := strings.Fields(stage)
		keepOut, keepErr := true, true
		var kept []string
		for _, a := range args {
			switch a {
			case ">/dev/null":
				keepOut = false
			case "2>/dev/null":
				keepErr = false
			default:
				kept = append(kept, strings.Trim(a, `'"`))
			}
		}
		if len(kept) == 0 || kept[0] != "meshctl" {
			t.Fatalf("doc example %q: only meshctl commands can run here", cmdline)
		}
		var out, errb bytes.Buffer
		code = Main(context.Background(), kept[1:], bytes.NewReader(stdin), &out, &errb)
		stdin = out.Bytes()
		if keepErr {
			all.Write(errb.Bytes())
		}
		if code != 0 {
			return all.String(), code
		}
		if !keepOut {
			stdin = nil
		}
	}
	// stdout of the last stage comes first, as a reader sees it scroll.
	return string(stdin) + all.String(), code
}

func splitLines(s string) []string {
	s = strings.TrimSuffix(s, "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// matchLines matches got against want, where a "..." line in want stands
// for any number of lines.
func matchLines(want, got []string) bool {
	if len(want) == 0 {
		return len(got) == 0
	}
	if want[0] == "..." {
		for i := 0; i <= len(got); i++ {
			if matchLines(want[1:], got[i:]) {
				return true
			}
		}
		return false
	}
	return len(got) > 0 && got[0] == want[0] && matchLines(want[1:], got[1:])
}

func TestMatchLines(t *testing.T) {
	tests := []struct {
		want, got string
		ok        bool
	}{
		{"a\nb", "a\nb", true},
		{"a\nb", "a\nc", false},
		{"a\n...\nd", "a\nb\nc\nd", true},
		{"a\n...\nd", "a\nd", true},
		{"a\n...", "a\nb", true},
		{"...\nz", "a\nb", false},
		{"a", "a\nb", false},
	}
	for _, tt := range tests {
		if got := matchLines(splitLines(tt.want), splitLines(tt.got)); got != tt.ok {
			t.Errorf("matchLines(%q, %q) = %v", tt.want, tt.got, got)
		}
	}
	ex := consoleExamples("text\n```console\n$ meshctl x\nout\n[exit 1]\n$ meshctl y\n```\n```sh\n$ meshctl z\n```\n")
	if len(ex) != 2 || ex[0].cmd != "meshctl x" || ex[0].exit != 1 || len(ex[0].want) != 1 || ex[1].cmd != "meshctl y" {
		t.Errorf("consoleExamples = %+v", ex)
	}
}
