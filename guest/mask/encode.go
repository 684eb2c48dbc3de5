package mask

import (
	"encoding/base64"
	"strings"
	"unicode/utf8"
)

// Encodings returns the encoded forms of value that the runner masks as
// well (ValueEncoders.cs, in HostContext's registration order). Entries may
// be empty or equal to value; AddValue skips those.
func Encodings(value string) []string {
	return []string{
		base64.StdEncoding.EncodeToString([]byte(value)),
		base64Shift(value, 1),
		base64Shift(value, 2),
		strings.ReplaceAll(value, `"`, `\"`), // CommandLineArgumentEscape
		strings.ReplaceAll(value, "'", "''"), // ExpressionStringEscape
		jsonEscape(value),
		uriDataEscape(value),
		xmlEscape(value),
		trimDoubleQuotes(value),
		powerShellPreAmpersand(value),
		powerShellPostAmpersand(value),
	}
}

// base64Shift is base64 of the value's bytes without the first shift
// bytes: inside a longer base64 text a value starts at one of three
// alignments, and each alignment encodes it differently.
func base64Shift(value string, shift int) string {
	b := []byte(value)
	if len(b) > shift {
		b = b[shift:]
	}
	return base64.StdEncoding.EncodeToString(b)
}

// jsonEscape is the body of Newtonsoft's JsonConvert.ToString(value)
// without its quotes: `"`, `\` and control characters escaped, the latter
// as \b \t \n \f \r or \u00xx (lower-case hex), plus U+2028 and U+2029.
func jsonEscape(value string) string {
	var b strings.Builder
	for _, r := range value {
		switch r {
		case '"':
			b.WriteString(`\"`)
		case '\\':
			b.WriteString(`\\`)
		case '\b':
			b.WriteString(`\b`)
		case '\t':
			b.WriteString(`\t`)
		case '\n':
			b.WriteString(`\n`)
		case '\f':
			b.WriteString(`\f`)
		case '\r':
			b.WriteString(`\r`)
		case '\u2028', '\u2029':
			b.WriteString(`\u`)
			writeHex4(&b, r)
		default:
			if r < 0x20 {
				b.WriteString(`\u`)
				writeHex4(&b, r)
			} else {
				b.WriteRune(r)
			}
		}
	}
	return b.String()
}

func writeHex4(b *strings.Builder, r rune) {
	const hex = "0123456789abcdef"
	for shift := 12; shift >= 0; shift -= 4 {
		b.WriteByte(hex[(r>>shift)&0xf])
	}
}

// uriDataEscape is .NET's Uri.EscapeDataString: every byte of the UTF-8
// form except the RFC 3986 unreserved characters becomes %XX (upper case).
func uriDataEscape(value string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(value); i++ {
		c := value[i]
		if isUnreserved(c) {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&0xf])
	}
	return b.String()
}

func isUnreserved(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '-' || c == '_' || c == '.' || c == '~'
}

// xmlEscape is .NET's SecurityElement.Escape.
var xmlEscaper = strings.NewReplacer("<", "&lt;", ">", "&gt;", `"`, "&quot;", "'", "&apos;", "&", "&amp;")

func xmlEscape(value string) string { return xmlEscaper.Replace(value) }

// trimDoubleQuotes masks the inside of a quoted value longer than 8
// characters.
func trimDoubleQuotes(value string) string {
	if utf8.RuneCountInString(value) > 8 && strings.HasPrefix(value, `"`) && strings.HasSuffix(value, `"`) {
		return value[1 : len(value)-1]
	}
	return ""
}

// powerShellPreAmpersand and powerShellPostAmpersand mask the parts of a
// value around "&" that PowerShell prints separately when such a value
// causes an error; sections shorter than 6 characters are not masked.
func powerShellPreAmpersand(value string) string {
	if !strings.Contains(value, "&") {
		return ""
	}
	var section string
	if i := strings.Index(value, "&+"); i >= 0 {
		section = value[:i+2]
	} else {
		section = value[:strings.LastIndex(value, "&")+1]
	}
	return atLeast6(section)
}

func powerShellPostAmpersand(value string) string {
	if !strings.Contains(value, "&") {
		return ""
	}
	var section string
	if i := strings.Index(value, "&+"); i >= 0 {
		// +1 skips the letter PowerShell colours.
		if rest := value[i+2:]; utf8.RuneCountInString(rest) > 1 {
			_, n := utf8.DecodeRuneInString(rest)
			section = rest[n:]
		}
	} else {
		section = value[strings.LastIndex(value, "&")+1:]
	}
	return atLeast6(section)
}

func atLeast6(s string) string {
	if utf8.RuneCountInString(s) >= 6 {
		return s
	}
	return ""
}
