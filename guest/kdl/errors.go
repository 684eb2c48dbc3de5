package kdl

import "fmt"

// Error is a syntax error in a KDL document.
type Error struct {
	Line   int // 1-based
	Column int // 1-based, in code points
	Msg    string
}

func (e *Error) Error() string {
	return fmt.Sprintf("kdl: %d:%d: %s", e.Line, e.Column, e.Msg)
}
