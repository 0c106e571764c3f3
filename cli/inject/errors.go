package inject

import (
	"fmt"
	"regexp"
	"strconv"
)

// Error is bad input: what is wrong and where. meshctl prints it as is.
type Error struct {
	// Source names the input: a file path, or "<stdin>".
	Source string
	// Doc is the 1-based index of the document in Source (comment-only
	// stretches are not counted).
	Doc int
	// Line is the 1-based line in Source.
	Line int
	// Object is "kind/name" when known.
	Object string
	Err    error
}

func (e *Error) Error() string {
	where := fmt.Sprintf("%s: document %d, line %d", e.Source, e.Doc, e.Line)
	if e.Object != "" {
		where += " (" + e.Object + ")"
	}
	return "inject: " + where + ": " + e.Err.Error()
}

func (e *Error) Unwrap() error { return e.Err }

// yamlLine finds "line N" in a yaml error message.
var yamlLine = regexp.MustCompile(`line (\d+)`)

// shiftLines rewrites every "line N" in a yaml error (relative to the
// document) to the line in the whole input, and returns the first one.
func shiftLines(err error, base int) (int, error) {
	first := 0
	msg := yamlLine.ReplaceAllStringFunc(err.Error(), func(m string) string {
		n, convErr := strconv.Atoi(m[len("line "):])
		if convErr != nil {
			return m
		}
		n += base - 1
		if first == 0 {
			first = n
		}
		return "line " + strconv.Itoa(n)
	})
	return first, fmt.Errorf("%s", msg)
}
