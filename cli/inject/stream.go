package inject

import (
	"bytes"
	"errors"
	"fmt"
	"io"

	"go.yaml.in/yaml/v3"
)

// chunk is one document of a YAML stream, cut out of the input as it is so
// that documents nobody changes can be written back byte for byte.
type chunk struct {
	// raw is the document's bytes, including its leading "---" line if any.
	raw []byte
	// marker is the "---" line itself ("" when the document had none, as
	// the first document of a file usually does).
	marker string
	// line is the 1-based input line where raw starts; a yaml line number N
	// inside raw is input line line+N-1.
	line int
}

// split cuts a YAML stream into documents at "---" lines. YAML forbids a
// line starting with "---" or "..." followed by a space or end of line
// inside any content (block scalars included), so cutting on lines is
// exact, not a heuristic. Directive-only chunks (%YAML ...) are joined to
// the document they introduce.
func split(in []byte) []chunk {
	var out []chunk
	cur := chunk{line: 1}
	start := 0
	line := 1
	for off := 0; off < len(in); line++ {
		next := len(in)
		if nl := bytes.IndexByte(in[off:], '\n'); nl >= 0 {
			next = off + nl + 1
		}
		if l := bytes.TrimRight(in[off:next], "\r\n"); isMarker(l, "---") {
			if off > start && !onlyDirectives(in[start:off]) {
				cur.raw = in[start:off]
				out = append(out, cur)
				start = off
				cur = chunk{line: line}
			}
			cur.marker = string(l)
		}
		off = next
	}
	if start < len(in) || len(out) == 0 {
		cur.raw = in[start:]
		out = append(out, cur)
	}
	return out
}

// isMarker reports whether line is the document marker m ("---" or "..."),
// alone or followed by a space or tab.
func isMarker(line []byte, m string) bool {
	if !bytes.HasPrefix(line, []byte(m)) {
		return false
	}
	return len(line) == len(m) || line[len(m)] == ' ' || line[len(m)] == '\t'
}

// onlyDirectives reports whether b holds nothing but %directives, comments
// and blank lines: such a chunk belongs to the document after it.
func onlyDirectives(b []byte) bool {
	sawDirective := false
	for _, l := range bytes.Split(b, []byte("\n")) {
		l = bytes.TrimSpace(l)
		switch {
		case len(l) == 0 || l[0] == '#':
		case l[0] == '%':
			sawDirective = true
		default:
			return false
		}
	}
	return sawDirective
}

// parse reads the chunk's single document. A nil node means the document
// is empty (only comments or whitespace).
func (c chunk) parse() (*yaml.Node, error) {
	dec := yaml.NewDecoder(bytes.NewReader(c.raw))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil
		}
		return nil, err
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		// split guarantees one document per chunk; a second one means the
		// input has a marker form split does not know.
		return nil, fmt.Errorf("more than one document where one was expected")
	}
	if len(doc.Content) == 0 {
		return nil, nil
	}
	// "---" followed by nothing (or only comments) is a null document:
	// kubectl skips it, and so do we.
	if r := doc.Content[0]; r.Kind == yaml.ScalarNode && r.ShortTag() == "!!null" {
		return nil, nil
	}
	return &doc, nil
}
