package expr

import (
	"errors"
	"testing"
)

func TestCheck(t *testing.T) {
	tests := []struct {
		name    string
		s       string
		o       CheckOptions
		wantCol int // 0: no error
		wantMsg string
	}{
		{name: "plain text", s: "make test"},
		{name: "good template", s: "echo ${{ matrix.os }} ${{ hashFiles('go.sum') }}"},
		{name: "unknown function", s: "echo ${{ matrix.os }} ${{ frobnicate(1) }}", wantCol: 27, wantMsg: `unknown function "frobnicate"`},
		{name: "syntax error", s: "a ${{ github.ref == }}", wantCol: 20, wantMsg: "unexpected end of expression"},
		{name: "unknown context", s: "${{ nosuch.x }}", wantCol: 5, wantMsg: `unknown context "nosuch"`},
		{name: "unclosed", s: "echo ${{ matrix.os", wantCol: 6, wantMsg: "unclosed ${{: no matching }}"},
		{name: "status function outside a condition", s: "${{ failure() }}", wantCol: 5, wantMsg: "function failure() is not available here"},
		{name: "bare condition", s: "failure() && github.ref == 'x'", o: CheckOptions{Condition: true}},
		{name: "bare condition with error", s: "  success() &&& x", o: CheckOptions{Condition: true}, wantCol: 15, wantMsg: `unexpected symbol "&"`},
		{name: "condition template", s: "${{ always() }}", o: CheckOptions{Condition: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Check(tt.s, tt.o)
			if tt.wantCol == 0 {
				if err != nil {
					t.Fatalf("Check(%q) = %v, want nil", tt.s, err)
				}
				return
			}
			var e *Error
			if !errors.As(err, &e) || e.Col != tt.wantCol || e.Msg != tt.wantMsg {
				t.Fatalf("Check(%q) = %#v, want column %d %q", tt.s, err, tt.wantCol, tt.wantMsg)
			}
		})
	}
}
