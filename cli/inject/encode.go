package inject

import (
	"bytes"
	"errors"
	"fmt"
	"io"

	"go.yaml.in/yaml/v3"
)

// encode writes a changed document in the style its author used: the same
// indent width, and lists either at their key's column ("kubectl style")
// or indented below it.
func encode(doc *yaml.Node) ([]byte, error) {
	indent, compact := style(doc)
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(indent)
	if compact {
		enc.CompactSeqIndent()
	}
	if err := enc.Encode(doc); err != nil {
		return nil, fmt.Errorf("encode: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("encode: %w", err)
	}
	return b.Bytes(), nil
}

// style finds the first nested block mapping and the first block list
// under a key, and reads the indent width and list style off them.
// Defaults: 2 spaces, lists at their key's column.
func style(doc *yaml.Node) (indent int, compact bool) {
	indent, compact = 0, true
	seenSeq := false
	var walk func(n *yaml.Node)
	walk = func(n *yaml.Node) {
		if indent > 0 && seenSeq {
			return
		}
		if n.Kind == yaml.MappingNode {
			for i := 0; i+1 < len(n.Content); i += 2 {
				k, v := n.Content[i], n.Content[i+1]
				if k.Line == 0 || v.Line == 0 || v.Style&yaml.FlowStyle != 0 || len(v.Content) == 0 {
					continue
				}
				switch v.Kind {
				case yaml.MappingNode:
					if indent == 0 && v.Content[0].Line > k.Line {
						if d := v.Content[0].Column - k.Column; d >= 2 && d <= 8 {
							indent = d
						}
					}
				case yaml.SequenceNode:
					if !seenSeq && v.Line > k.Line {
						seenSeq = true
						compact = v.Column == k.Column
					}
				}
			}
		}
		for _, c := range n.Content {
			walk(c)
		}
	}
	walk(doc)
	if indent == 0 {
		indent = 2
	}
	return indent, compact
}

// validStream checks that b reads back as a YAML stream.
func validStream(b []byte) error {
	dec := yaml.NewDecoder(bytes.NewReader(b))
	for {
		var n yaml.Node
		err := dec.Decode(&n)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}
