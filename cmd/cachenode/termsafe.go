package main

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

// termSafe returns s, which comes from a volume (a path, a symlink
// target, a reason quoting them), fit for an operator's terminal: every
// rune that is not printable (escape sequences, carriage returns, C1
// controls) and every invalid UTF-8 byte is written as a Go escape
// (\x1b, \r, \u009b, \xff); printable text is left as it is.
func termSafe(s string) string {
	clean := true
	for _, c := range s {
		if c == utf8.RuneError || !strconv.IsPrint(c) {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	for len(s) > 0 {
		c, n := utf8.DecodeRuneInString(s)
		switch {
		case c == utf8.RuneError && n <= 1:
			b.WriteString(`\x`)
			b.WriteString(strconv.FormatUint(uint64(s[0])>>4, 16))
			b.WriteString(strconv.FormatUint(uint64(s[0])&0xf, 16))
		case strconv.IsPrint(c):
			b.WriteString(s[:n])
		default:
			q := strconv.QuoteRune(c)
			b.WriteString(q[1 : len(q)-1])
		}
		s = s[n:]
	}
	return b.String()
}
