// Package redact owns ringcache's one rule for keeping secrets out of
// error messages and logs: given the secrets a message may carry (metadata
// URLs, tokens), it removes each secret whole and every part of it that is
// a secret on its own: the password of a URL's user info (raw and
// percent-decoded) and the values of query parameters that name a secret
// (password=, token=, secret-key=, ...).
//
// It is a leaf package (standard library only), so that the JuiceFS layer
// (pkg/juice), the Warmup controller (pkg/prefetch/controller), the CSI
// services and the commands share it without importing each other.
//
// The rule errs on the side of hiding: a URL that does not parse is still
// searched for passwords (everything between "://" and any "@", after the
// first ":"; a URL without "://" is read as JuiceFS reads it, as redis://),
// and a password is masked wherever it appears in the message, however
// short. What a secret part leaves behind is "****"; a whole secret
// becomes "<redacted>". If the masks themselves would spell a secret (a
// password of "*" or "d"), the secret is deleted until it no longer
// appears: the output never contains any of Secrets(secret).
package redact

import (
	"net/url"
	"slices"
	"strings"
)

const (
	// Placeholder replaces a whole secret.
	Placeholder = "<redacted>"
	// Mask replaces a secret part of a secret (a password).
	Mask = "****"
)

// secretKeys are the words that make a query parameter's value a secret
// when its name (lower case) contains one.
var secretKeys = []string{"pass", "pwd", "secret", "token", "key", "cred", "auth", "sig"}

// Secrets returns what must never appear of secret: secret itself and its
// secret parts (see the package comment), longest first, without
// duplicates or empty strings.
func Secrets(secret string) []string {
	if secret == "" {
		return nil
	}
	out := []string{secret}
	add := func(s string) {
		out = append(out, s)
		if d, err := url.PathUnescape(s); err == nil {
			out = append(out, d)
		}
		if d, err := url.QueryUnescape(s); err == nil {
			out = append(out, d)
		}
	}
	rest := secret
	if i := strings.Index(rest, "://"); i >= 0 {
		rest = rest[i+3:]
	}
	// Every "@" may end the user info: parsers differ on which one does
	// (net/url: the last one before the first "/"), and a URL that does
	// not parse is still a secret.
	for i := 0; i < len(rest); i++ {
		if rest[i] != '@' {
			continue
		}
		if _, pw, ok := strings.Cut(rest[:i], ":"); ok {
			add(pw)
		}
	}
	// Query parameters, wherever a "?", "&" or ";" starts one.
	for _, seg := range strings.FieldsFunc(rest, func(r rune) bool { return r == '?' || r == '&' || r == ';' }) {
		k, v, ok := strings.Cut(seg, "=")
		if !ok {
			continue
		}
		k = strings.ToLower(k)
		for _, w := range secretKeys {
			if strings.Contains(k, w) {
				add(v)
				break
			}
		}
	}
	out = slices.DeleteFunc(out, func(s string) bool { return s == "" })
	slices.SortStableFunc(out, func(a, b string) int { return len(b) - len(a) })
	return slices.Compact(out)
}

// String returns s without any of the secrets given or their secret
// parts.
func String(s string, secrets ...string) string {
	var needles []string
	for _, sec := range secrets {
		for i, n := range Secrets(sec) {
			if i == 0 {
				s = strings.ReplaceAll(s, n, Placeholder) // the whole secret: the longest
			} else {
				needles = append(needles, n)
			}
		}
	}
	slices.SortStableFunc(needles, func(a, b string) int { return len(b) - len(a) })
	for _, n := range needles {
		s = strings.ReplaceAll(s, n, Mask)
	}
	// The placeholder and the masks may spell a short secret ("d", "**"),
	// or one secret's mask meet another's text: delete what is left until
	// nothing is. Each pass that changes s shortens it, so this ends.
	all := append(needles, secrets...)
	for changed := true; changed; {
		changed = false
		for _, n := range all {
			if n != "" && strings.Contains(s, n) {
				s, changed = strings.ReplaceAll(s, n, ""), true
			}
		}
	}
	return s
}

// Error returns err with a message passed through String: errors.Is and
// errors.As still see err's chain. nil stays nil, and an err whose message
// holds no secret is returned as it is.
func Error(err error, secrets ...string) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	red := String(msg, secrets...)
	if red == msg {
		return err
	}
	return &redactedError{msg: red, err: err}
}

// redactedError is an error with a redacted message and the original
// chain.
type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }
