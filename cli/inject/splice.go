package inject

import (
	"bytes"
	"reflect"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"
)

// splice redoes the merger's insertions as text edits on the document's
// original bytes, so that a changed document differs from its input only
// by the added lines: blank lines, comment spacing, folded scalars and
// every other byte stay. It returns false when it cannot (the merge did
// more than insert keys into block mappings, or a mapping does not start
// on a line of its own), and the caller re-encodes the document instead.
// The result is parsed back and must mean exactly what the merged node
// tree means, or it is not used.
func splice(c chunk, doc *yaml.Node, m *merger) ([]byte, bool) {
	if m.other || len(m.inserts) == 0 {
		return nil, false
	}
	nl := "\n"
	if bytes.Contains(c.raw, []byte("\r\n")) {
		nl = "\r\n"
	}
	raw := c.raw
	if len(raw) > 0 && raw[len(raw)-1] != '\n' {
		// Something may be inserted after the last line.
		raw = append(append([]byte(nil), raw...), nl...)
	}
	lines := bytes.SplitAfter(raw, []byte("\n"))
	indent, compact := style(doc)

	// Each insertion goes where merge put it: before the next key the
	// input already had (above that key's comment lines), or at the end
	// of the mapping. Insertions at the same place form one fragment.
	type edit struct {
		at      int // 0-based line index to insert before
		mapping *yaml.Node
		frag    *yaml.Node
		pad     string
	}
	var edits []*edit
	for _, in := range m.inserts {
		mp := in.mapping
		if mp.Style&yaml.FlowStyle != 0 {
			return nil, false
		}
		first, next := (*yaml.Node)(nil), (*yaml.Node)(nil)
		seen := false
		for i := 0; i < len(mp.Content); i += 2 {
			k := mp.Content[i]
			if k == in.key {
				seen = true
				continue
			}
			if k.Line == 0 {
				continue
			}
			if first == nil {
				first = k
			}
			if seen && next == nil {
				next = k
			}
		}
		if first == nil || !ownLine(lines, first) {
			return nil, false
		}
		var at int
		if next != nil {
			if !ownLine(lines, next) {
				return nil, false
			}
			at = next.Line - 1
			for at > 0 && isComment(lines[at-1]) {
				at--
			}
		} else {
			at = blockEnd(lines, first)
		}
		var e *edit
		for _, x := range edits {
			if x.at == at {
				e = x
			}
		}
		switch {
		case e == nil:
			e = &edit{at: at, mapping: mp, frag: &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}, pad: strings.Repeat(" ", first.Column-1)}
			edits = append(edits, e)
		case e.mapping != mp:
			return nil, false // two mappings end on one line: order unclear
		}
		e.frag.Content = append(e.frag.Content, in.key, in.value)
	}
	texts := make(map[*edit][]byte, len(edits))
	for _, e := range edits {
		text, err := encodeFragment(e.frag, indent, compact, e.pad, nl)
		if err != nil {
			return nil, false
		}
		texts[e] = text
	}
	// Bottom-up, so earlier line numbers stay right.
	sort.SliceStable(edits, func(i, j int) bool { return edits[i].at > edits[j].at })
	for _, e := range edits {
		lines = append(lines[:e.at], append([][]byte{texts[e]}, lines[e.at:]...)...)
	}
	out := bytes.Join(lines, nil)
	if !sameMeaning(out, doc) {
		return nil, false
	}
	return out, true
}

// ownLine reports whether key k is the first thing on its line (not
// "- name: x", where the mapping shares its line with a list dash).
func ownLine(lines [][]byte, k *yaml.Node) bool {
	if k.Line < 1 || k.Line > len(lines) || k.Column < 1 {
		return false
	}
	l := lines[k.Line-1]
	return k.Column-1 <= len(l) && strings.TrimSpace(string(l[:k.Column-1])) == ""
}

// blockEnd returns the line index just past the block mapping whose first
// key is first: the first later line, not blank or a comment, indented
// less than first (block structure is indentation), backed up over the
// blank lines and outer comments before it.
func blockEnd(lines [][]byte, first *yaml.Node) int {
	col := first.Column - 1
	end := len(lines)
	for i := first.Line; i < len(lines); i++ {
		l := bytes.TrimRight(lines[i], "\r\n")
		t := bytes.TrimLeft(l, " ")
		if len(t) == 0 || t[0] == '#' {
			continue
		}
		if len(l)-len(t) < col || isMarker(t, "...") {
			end = i
			break
		}
	}
	for end > first.Line {
		l := bytes.TrimRight(lines[end-1], "\r\n")
		t := bytes.TrimLeft(l, " ")
		if len(t) == 0 || (t[0] == '#' && len(l)-len(t) < col) {
			end--
			continue
		}
		break
	}
	return end
}

func isComment(line []byte) bool {
	t := bytes.TrimSpace(line)
	return len(t) > 0 && t[0] == '#'
}

// encodeFragment encodes a mapping in the document's style, every line
// prefixed with pad.
func encodeFragment(frag *yaml.Node, indent int, compact bool, pad, nl string) ([]byte, error) {
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(indent)
	if compact {
		enc.CompactSeqIndent()
	}
	if err := enc.Encode(frag); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	var out strings.Builder
	for _, l := range strings.SplitAfter(b.String(), "\n") {
		if l == "" {
			continue
		}
		out.WriteString(pad + strings.TrimSuffix(l, "\n") + nl)
	}
	return []byte(out.String()), nil
}

// sameMeaning reports whether text parses to one document equal, as data,
// to doc.
func sameMeaning(text []byte, doc *yaml.Node) bool {
	var got, want any
	var n yaml.Node
	if err := yaml.Unmarshal(text, &n); err != nil || len(n.Content) == 0 {
		return false
	}
	if err := n.Decode(&got); err != nil {
		return false
	}
	if err := doc.Decode(&want); err != nil {
		return false
	}
	return reflect.DeepEqual(got, want)
}
