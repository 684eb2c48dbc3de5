package contract

import (
	"slices"
	"strconv"
	"unicode/utf8"
)

// timeLayout is RFC 3339 with all nine fractional digits, so every
// timestamp has the same width and sorts as text.
const timeLayout = "2006-01-02T15:04:05.000000000Z07:00"

// Types whose events carry a step index.
var stepTypes = map[string]bool{TypeStepStarted: true, TypeLog: true, TypeStepFinished: true, TypeStepSummary: true}

// AppendEvent is MarshalEvent into b, for writers that reuse a buffer. It
// writes the JSON line by hand: a job's output can be millions of log
// events, and reflection-based encoding would dominate the cost.
func AppendEvent(b []byte, ev *Event) []byte {
	b = append(b, `{"seq":`...)
	b = strconv.AppendInt(b, ev.Seq, 10)
	b = append(b, `,"time":"`...)
	b = ev.Time.UTC().AppendFormat(b, timeLayout)
	b = append(b, '"')
	b = appendField(b, "type", ev.Type)
	b = appendJob(b, ev)
	if stepTypes[ev.Type] {
		b = append(b, `,"step":`...)
		b = strconv.AppendInt(b, int64(ev.Step), 10)
	}
	b = appendOptional(b, "id", ev.StepID)
	b = appendOptional(b, "name", ev.Name)
	b = appendLog(b, ev)
	b = appendResult(b, ev)
	b = appendOptional(b, "markdown", ev.Markdown)
	if ev.Type == TypeOutputs || ev.Outputs != nil {
		b = appendOutputs(b, ev.Outputs)
	}
	b = appendOptional(b, "message", ev.Message)
	b = appendDebug(b, ev.Debug)
	return append(b, "}\n"...)
}

func appendJob(b []byte, ev *Event) []byte {
	if j := ev.Job; j != nil {
		b = append(b, `,"job":{"id":`...)
		b = appendString(b, j.ID)
		b = appendOptional(b, "name", j.Name)
		b = appendOptional(b, "workflow", j.Workflow)
		b = append(b, '}')
	}
	b = appendOptional(b, "agent", ev.Agent)
	return appendInt(b, "steps", int64(ev.Steps))
}

func appendLog(b []byte, ev *Event) []byte {
	b = appendOptional(b, "stream", ev.Stream)
	if ev.Type == TypeLog {
		b = appendField(b, "line", ev.Line)
	} else {
		b = appendOptional(b, "line", ev.Line)
	}
	b = appendOptional(b, "kind", ev.Kind)
	if a := ev.Annotation; a != nil {
		b = append(b, `,"annotation":{"level":`...)
		b = appendString(b, a.Level)
		b = appendField(b, "message", a.Message)
		b = appendOptional(b, "file", a.File)
		b = appendInt(b, "line", int64(a.Line))
		b = appendInt(b, "col", int64(a.Col))
		b = appendInt(b, "end_line", int64(a.EndLine))
		b = appendInt(b, "end_column", int64(a.EndColumn))
		b = appendOptional(b, "title", a.Title)
		b = append(b, '}')
	}
	return b
}

func appendResult(b []byte, ev *Event) []byte {
	b = appendOptional(b, "outcome", ev.Outcome)
	b = appendOptional(b, "conclusion", ev.Conclusion)
	if ev.ExitCode != nil {
		b = append(b, `,"exit_code":`...)
		b = strconv.AppendInt(b, int64(*ev.ExitCode), 10)
	}
	if ev.Type == TypeStepFinished || ev.Type == TypeJobFinished {
		b = append(b, `,"duration_ms":`...)
		b = strconv.AppendInt(b, ev.DurationMS, 10)
	}
	return appendOptional(b, "reason", ev.Reason)
}

func appendDebug(b []byte, d *DebugSession) []byte {
	if d == nil {
		return b
	}
	b = append(b, `,"debug":{"host":`...)
	b = appendString(b, d.Host)
	b = append(b, `,"port":`...)
	b = strconv.AppendInt(b, int64(d.Port), 10)
	b = appendField(b, "user", d.User)
	b = append(b, `,"expires":"`...)
	b = d.Expires.UTC().AppendFormat(b, timeLayout)
	return append(b, '"', '}')
}

func appendOutputs(b []byte, outs map[string]string) []byte {
	b = append(b, `,"outputs":{`...)
	keys := make([]string, 0, len(outs))
	for k := range outs {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, k)
		b = append(b, ':')
		b = appendString(b, outs[k])
	}
	return append(b, '}')
}

func appendField(b []byte, name, value string) []byte {
	b = append(b, ',', '"')
	b = append(b, name...)
	b = append(b, '"', ':')
	return appendString(b, value)
}

func appendOptional(b []byte, name, value string) []byte {
	if value == "" {
		return b
	}
	return appendField(b, name, value)
}

func appendInt(b []byte, name string, v int64) []byte {
	if v == 0 {
		return b
	}
	b = append(b, ',', '"')
	b = append(b, name...)
	b = append(b, '"', ':')
	return strconv.AppendInt(b, v, 10)
}

// appendString writes s as a JSON string. Invalid UTF-8 becomes U+FFFD,
// one per invalid byte, so any output yields a valid line.
func appendString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			i++
			continue
		}
		if c < utf8.RuneSelf {
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i++
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' { // valid JSON, but breaks JavaScript readers
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
