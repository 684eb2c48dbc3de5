package kdl

import (
	"errors"
	"strings"
	"testing"
)

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"unclosed string", "node \"abc", `kdl: 1:6: string is never closed (missing ")`},
		{"unclosed raw string", "node ##\"foo\"#\n", `kdl: 1:14: raw string is not closed before the end of the line (close it with "##)`},
		{"newline in string", "a \"x\ny\"", `kdl: 1:5: newline in a single-line string (use \n, or """ for a multi-line string)`},
		{"bad escape", "a\nnode \"\\/\"", `kdl: 2:7: invalid escape "\/" (valid: \n \r \t \\ \" \b \f \s \u{hex} and \ before whitespace)`},
		{"surrogate escape", `a "\u{D800}"`, `kdl: 1:4: invalid escape \u{D800}: not a Unicode scalar value`},
		{"unclosed block", "a {\n  b {\n  }\n", `kdl: 1:3: children block is never closed (missing "}")`},
		{"unclosed comment", "a /* b", `kdl: 1:3: block comment is never closed`},
		{"missing value", "node a=", `kdl: 1:8: expected a value after "=", found end of input`},
		{"double equals", "node a==1", `kdl: 1:8: expected a value after "=", found "="`},
		{"number as key", "node 1=2", `kdl: 1:7: unexpected "=": a property name must be a string`},
		{"typed key", "node (t)key=1", `kdl: 1:12: unexpected "=": a property name cannot have a type annotation (write key=(type)value)`},
		{"slashdashed equals", "node key /- = value", `kdl: 1:13: unexpected "=" after slashdash`},
		{"no space", "node \"a\"\"b\"", `kdl: 1:9: missing whitespace before "\""`},
		{"bare keyword", "node true", `kdl: 1:6: bare "true" is not allowed: write #true for the keyword or "true" for the string`},
		{"unknown keyword", "node #yes", `kdl: 1:6: unknown keyword "#yes" (keywords: #true #false #null #inf #-inf #nan)`},
		{"bad number", "node 1.0.0", `kdl: 1:6: invalid number "1.0.0"`},
		{"signed radix digits", "node 0x-1", `kdl: 1:6: invalid number "0x-1"`},
		{"number-like ident", "node .5", `kdl: 1:6: invalid number ".5" (quote it if it is a string)`},
		{"number as name", "10 a", `kdl: 1:1: a node name must be a string, found integer 10 (quote it)`},
		{"empty type", "()node", `kdl: 1:2: expected a type name, found ")"`},
		{"unclosed type", "(a b)node", `kdl: 1:4: expected ")" to close the type annotation, found "b"`},
		{"stray close", "a\n}", `kdl: 2:1: unexpected "}" outside a children block`},
		{"two blocks", "node {} {}", `kdl: 1:9: node "node" already has a children block`},
		{"entry after block", "node {} x", `kdl: 1:9: arguments and properties must come before the children block`},
		{"bad continuation", "node \\ x", `kdl: 1:6: line continuation "\" must be followed by a newline, found "x"`},
		{"dangling slashdash", "node /-;", `kdl: 1:6: slashdash "/-" must be followed by an argument, property or children block, found ";"`},
		{"slashdash at end", "a {\n  /-\n}", `kdl: 2:3: slashdash "/-" must be followed by a node, found "}"`},
		{"single-line multi", `a """x"""`, `kdl: 1:6: a multi-line string must start with a newline right after """ (use "..." for a single line)`},
		{"closing line text", "a \"\"\"\n  x\n  y\"\"\"", `kdl: 3:3: the closing """ of a multi-line string must be on its own line, after only whitespace`},
		{"dedent mismatch", "a \"\"\"\n  x\n y\n  \"\"\"", `kdl: 3:2: multi-line string line must start with the same whitespace as the closing line`},
		{"disallowed code point", "a\n  b\u200Ec", `kdl: 2:4: code point U+200E is not allowed in a KDL document`},
		{"late BOM", "a \uFEFF", `kdl: 1:3: code point U+FEFF is not allowed in a KDL document`},
		{"invalid UTF-8", "a \xff", `kdl: 1:3: invalid UTF-8 (byte 0xFF)`},
		{"columns count code points", "ノード\u3000x y=", `kdl: 1:9: expected a value after "=", found end of input`},
		{"CRLF is one newline", "a\r\n\r\nb \"", `kdl: 3:3: string is never closed (missing ")`},
		{"BOM is not a column", "\uFEFFa \"", `kdl: 1:3: string is never closed (missing ")`},
		{"too deep", strings.Repeat("a{", maxDepth+1), `kdl: 1:2002: children blocks nested more than 1000 deep`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc, err := ParseString(tt.in)
			if err == nil {
				t.Fatalf("parsed, want error %q; got:\n%s", tt.want, Format(doc))
			}
			if err.Error() != tt.want {
				t.Errorf("error\n got  %s\n want %s", err, tt.want)
			}
			var perr *Error
			if !errors.As(err, &perr) || perr.Line < 1 || perr.Column < 1 {
				t.Errorf("error %#v is not a positioned *Error", err)
			}
		})
	}
}

func TestParseReaderError(t *testing.T) {
	_, err := Parse(failingReader{})
	if err == nil || !strings.Contains(err.Error(), "disk on fire") {
		t.Fatalf("Parse(failing reader) = %v, want the read error", err)
	}
}

type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, errors.New("disk on fire") }
