package events

import (
	"bytes"
	"unicode/utf8"

	"github.com/solstice-ci/solstice/guest/mask"
)

// MaxLine is the longest log line in bytes; longer lines are cut.
const MaxLine = 64 << 10

// Splitter turns a byte stream (a process's stdout or stderr) into log
// lines, holding at most MaxLine plus the longest mask pattern in memory
// however long a line is:
//
//   - "\n" and "\r\n" end a line;
//   - a lone "\r" discards the text before it on the current line, so a
//     progress bar yields its final state only; text of the line that
//     was already emitted as a piece stays emitted;
//   - a line longer than the limit is emitted in pieces. A cut never falls
//     inside a UTF-8 sequence or inside text the masker would mask, so a
//     secret cannot escape masking by straddling two pieces; for that the
//     splitter looks ahead by the longest pattern's length before cutting.
//
// Emit receives each line or piece; whole is false for pieces of a cut
// line (workflow commands are only recognised in whole lines). Text is
// raw bytes: invalid UTF-8 is replaced when the event is encoded.
type Splitter struct {
	limit   int
	guard   *mask.Masker
	emit    func(text string, whole bool)
	buf     []byte
	cr      bool // the last byte seen was a "\r"
	chunked bool // part of the current line was already emitted
}

// NewSplitter returns a Splitter cutting at limit bytes (MaxLine if <= 0).
// guard may be nil.
func NewSplitter(limit int, guard *mask.Masker, emit func(text string, whole bool)) *Splitter {
	if limit <= 0 {
		limit = MaxLine
	}
	return &Splitter{limit: limit, guard: guard, emit: emit}
}

// Write consumes output. It never fails.
func (s *Splitter) Write(p []byte) (int, error) {
	n := len(p)
	hasCR := s.cr || bytes.IndexByte(p, '\r') >= 0
	for len(p) > 0 {
		if s.cr {
			s.cr = false
			if p[0] == '\n' {
				s.endLine()
				p = p[1:]
				continue
			}
			s.buf = s.buf[:0] // a terminal would draw over it
		}
		var i int
		if hasCR {
			i = bytes.IndexAny(p, "\r\n")
		} else {
			i = bytes.IndexByte(p, '\n') // fast path, no quadratic rescans
		}
		if i < 0 {
			s.add(p)
			break
		}
		s.add(p[:i])
		if p[i] == '\n' {
			s.endLine()
		} else {
			s.cr = true
		}
		p = p[i+1:]
	}
	return n, nil
}

// Close emits the unterminated last line, if any.
func (s *Splitter) Close() error {
	if len(s.buf) > 0 || s.cr {
		s.endLine()
	}
	s.cr = false
	return nil
}

func (s *Splitter) lookahead() int {
	if s.guard == nil {
		return 0
	}
	return s.guard.MaxLen()
}

// add appends seg to the current line, emitting a piece whenever the
// buffer holds more than a full piece plus the look-ahead (only then is it
// certain that the line goes on past the piece).
func (s *Splitter) add(seg []byte) {
	for len(seg) > 0 {
		full := s.limit + s.lookahead()
		if len(s.buf) > full {
			s.cutPiece()
			continue
		}
		k := min(full+1-len(s.buf), len(seg))
		s.buf = append(s.buf, seg[:k]...)
		seg = seg[k:]
	}
}

// endLine emits the rest of the current line.
func (s *Splitter) endLine() {
	for len(s.buf) > s.limit {
		s.cutPiece() // all of the line is here: no look-ahead needed
	}
	s.emit(string(s.buf), !s.chunked)
	s.buf = s.buf[:0]
	s.chunked = false
}

func (s *Splitter) cutPiece() {
	at := s.cutPoint()
	s.emit(string(s.buf[:at]), false)
	s.chunked = true
	s.buf = s.buf[:copy(s.buf, s.buf[at:])]
}

// cutPoint is where the next piece ends: at the limit, moved before (or,
// at the very start, after) a masked range that spans it, then back to
// the start of a UTF-8 sequence.
func (s *Splitter) cutPoint() int {
	at := min(s.limit, len(s.buf))
	if s.guard != nil {
		for _, r := range s.guard.RangesBytes(s.buf) {
			if r.Start < at && at < r.End {
				if r.Start > 0 {
					at = r.Start
				} else {
					at = r.End
				}
				break
			}
		}
	}
	for k := 0; k < utf8.UTFMax-1 && at > 0 && at < len(s.buf) && !utf8.RuneStart(s.buf[at]); k++ {
		at--
	}
	if at == 0 {
		at = min(s.limit, len(s.buf))
	}
	return at
}
