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
	if m.other || len(m.inserts)+len(m.seqInserts)+len(m.removals) == 0 {
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
		at      int        // 0-based line index to insert before
		mapping *yaml.Node // the mapping or list inserted into
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
	// List elements go before the input's element that follows them, or
	// after the list's last one, at the dash's column.
	for _, in := range m.seqInserts {
		sq := in.seq
		if sq.Style&yaml.FlowStyle != 0 {
			return nil, false
		}
		var last *yaml.Node
		for _, n := range sq.Content {
			if n.Line > 0 {
				last = n
			}
		}
		if last == nil {
			return nil, false
		}
		var at, dash int
		if in.before != nil {
			var ok bool
			if at, dash, ok = dashLine(lines, in.before); !ok {
				return nil, false
			}
			for at > 0 && isComment(lines[at-1]) {
				at--
			}
		} else {
			start, d, ok := dashLine(lines, last)
			if !ok {
				return nil, false
			}
			at, dash = seqEnd(lines, start, d), d
		}
		var e *edit
		for _, x := range edits {
			if x.at == at {
				e = x
			}
		}
		switch {
		case e == nil:
			e = &edit{at: at, mapping: sq, frag: &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}, pad: strings.Repeat(" ", dash)}
			edits = append(edits, e)
		case e.mapping != sq:
			return nil, false
		}
		e.frag.Content = append(e.frag.Content, in.item)
	}
	type span struct {
		start, end int // lines [start, end) are replaced by text
		text       []byte
	}
	var spans []span
	for _, e := range edits {
		text, err := encodeFragment(e.frag, indent, compact, e.pad, nl)
		if err != nil {
			return nil, false
		}
		spans = append(spans, span{e.at, e.at, text})
	}
	for _, r := range m.removals {
		start, end, ok := removedLines(lines, r)
		if !ok {
			return nil, false
		}
		spans = append(spans, span{start, end, nil})
	}
	// Bottom-up, so earlier line numbers stay right; spans must not
	// overlap (or touch, where the order of an insertion and a deletion
	// would be unclear).
	sort.SliceStable(spans, func(i, j int) bool { return spans[i].start > spans[j].start })
	for i := 1; i < len(spans); i++ {
		if spans[i].end > spans[i-1].start || (spans[i].end == spans[i-1].start && (spans[i].start == spans[i].end) != (spans[i-1].start == spans[i-1].end)) {
			return nil, false
		}
	}
	for _, sp := range spans {
		var repl [][]byte
		if sp.text != nil {
			repl = [][]byte{sp.text}
		}
		lines = append(lines[:sp.start], append(repl, lines[sp.end:]...)...)
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

// removedLines finds the lines of a removed key (with its value) or list
// element, with the comment lines just above it.
func removedLines(lines [][]byte, r removal) (start, end int, ok bool) {
	n := r.node
	if n.Line < 1 || n.Line > len(lines) {
		return 0, 0, false
	}
	start = n.Line - 1
	if r.container.Kind == yaml.MappingNode {
		if !ownLine(lines, n) {
			return 0, 0, false
		}
	} else if !bytes.HasPrefix(bytes.TrimLeft(lines[start], " "), []byte("-")) {
		return 0, 0, false // the element does not start on its dash's line
	}
	for start > 0 && isComment(lines[start-1]) {
		start--
	}
	switch {
	case r.next != nil:
		if r.next.Line-1 <= start || r.next.Line > len(lines) {
			return 0, 0, false
		}
		end = r.next.Line - 1
		for end > start && isComment(lines[end-1]) {
			end--
		}
	case r.container.Kind == yaml.MappingNode:
		if !ownLine(lines, r.first) {
			return 0, 0, false
		}
		end = blockEnd(lines, r.first)
	default:
		dash := bytes.IndexByte(lines[n.Line-1], '-')
		end = seqEnd(lines, n.Line-1, dash)
	}
	return start, end, end > start
}

// dashLine returns the line index of list element n and its dash's
// column, if the element starts on the line of its dash.
func dashLine(lines [][]byte, n *yaml.Node) (line, dash int, ok bool) {
	if n.Line < 1 || n.Line > len(lines) {
		return 0, 0, false
	}
	l := lines[n.Line-1]
	t := bytes.TrimLeft(l, " ")
	if len(t) == 0 || t[0] != '-' {
		return 0, 0, false
	}
	return n.Line - 1, len(l) - len(t), true
}

// seqEnd returns the line index just past the block list element that
// starts on line start with its dash at column dash: the first later line
// indented less, or as much but not another element.
func seqEnd(lines [][]byte, start, dash int) int {
	end := len(lines)
	for i := start + 1; i < len(lines); i++ {
		l := bytes.TrimRight(lines[i], "\r\n")
		t := bytes.TrimLeft(l, " ")
		if len(t) == 0 || t[0] == '#' {
			continue
		}
		ind := len(l) - len(t)
		if ind < dash || (ind == dash && t[0] != '-') || isMarker(t, "...") {
			end = i
			break
		}
	}
	for end > start+1 && len(bytes.TrimSpace(lines[end-1])) == 0 {
		end--
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
