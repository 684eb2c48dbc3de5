// Package kdl parses KDL 2.0 documents (https://kdl.dev) and prints them in
// the canonical form used by the KDL test suite.
//
// Solstice reads `.solstice/workflow.kdl` with it (see the workflow
// subpackage). It is written from the KDL 2.0 specification alone and uses
// only the standard library, because it is linked into the small in-VM
// agent that also builds for illumos; no Go KDL module is available to us.
//
// The whole language is supported: nodes with arguments, properties and
// children; type annotations; identifier, quoted, raw and multi-line
// strings (with escapes, whitespace escapes and dedenting); decimal,
// hexadecimal, octal and binary numbers of any size; the #true, #false,
// #null, #inf, #-inf and #nan keywords; line, nested block and slashdash
// comments; line continuations; a leading BOM; and the spec's whitespace,
// newline and disallowed code point classes.
//
// Values keep what the text said rather than what a machine type can hold:
// integers are *big.Int and non-integer decimals keep their exact decimal
// digits (1.23E+1000 does not fit a float64), with accessors that convert.
//
// Children blocks may nest at most 1000 deep, so that a hostile document
// cannot exhaust the stack; the spec sets no limit.
//
// Parse errors are *Error values carrying a 1-based line and column
// (counted in code points; CR LF is one newline).
package kdl
