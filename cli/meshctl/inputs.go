package meshctl

import (
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/meshlet/meshlet/cli/inject"
)

// input is one file (or stdin) to transform.
type input struct {
	name string
	data []byte
}

// readInputs expands the arguments of inject/uninject: files, directories
// (their *.yaml, *.yml and *.json files, sorted; subdirectories only with
// recursive) and "-" for stdin.
func readInputs(args []string, stdin io.Reader, recursive bool) ([]input, error) {
	var out []input
	for _, a := range args {
		if a == "-" {
			b, err := io.ReadAll(stdin)
			if err != nil {
				return nil, fmt.Errorf("read stdin: %w", err)
			}
			out = append(out, input{name: "<stdin>", data: b})
			continue
		}
		st, err := os.Stat(a)
		if err != nil {
			return nil, err
		}
		if !st.IsDir() {
			b, err := os.ReadFile(a)
			if err != nil {
				return nil, err
			}
			out = append(out, input{name: a, data: b})
			continue
		}
		var files []string
		err = filepath.WalkDir(a, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() {
				if p != a && !recursive {
					return filepath.SkipDir
				}
				return nil
			}
			switch strings.ToLower(filepath.Ext(p)) {
			case ".yaml", ".yml", ".json":
				files = append(files, p)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		sort.Strings(files)
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				return nil, err
			}
			out = append(out, input{name: f, data: b})
		}
	}
	return out, nil
}

// transformAll runs t over every input and joins the results into one
// stream. Any error returns no output, so a failed run never feeds half a
// manifest to kubectl.
func transformAll(t *inject.Transformer, inputs []input) ([]byte, []inject.Report, error) {
	var (
		buf     bytes.Buffer
		reports []inject.Report
	)
	for _, in := range inputs {
		out, reps, err := t.Transform(in.name, in.data)
		if err != nil {
			return nil, nil, err
		}
		if len(bytes.TrimSpace(out)) == 0 {
			continue
		}
		if buf.Len() > 0 {
			if !bytes.HasSuffix(buf.Bytes(), []byte("\n")) {
				buf.WriteByte('\n')
			}
			if !bytes.HasPrefix(out, []byte("---")) {
				buf.WriteString("---\n")
			}
		}
		buf.Write(out)
		reports = append(reports, reps...)
	}
	if buf.Len() > 0 && !bytes.HasSuffix(buf.Bytes(), []byte("\n")) {
		buf.WriteByte('\n')
	}
	return buf.Bytes(), reports, nil
}
