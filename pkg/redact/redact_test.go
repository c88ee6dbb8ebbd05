package redact

import (
	"errors"
	"io/fs"
	"slices"
	"strings"
	"testing"
)

func TestSecrets(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want []string
	}{
		{"", nil},
		{"redis://h:6379/1", []string{"redis://h:6379/1"}},
		{"redis://:hunter2@h:6379/1", []string{"redis://:hunter2@h:6379/1", "hunter2"}},
		{"redis://user:pw@h/1", []string{"redis://user:pw@h/1", "pw"}},
		{"redis://u:p%40ss@h/1", []string{"redis://u:p%40ss@h/1", "p%40ss", "p@ss"}},
		// Not parsable, and an "@" after the host: every candidate.
		{"redis://u:pw@h/1?x=a@b", []string{"redis://u:pw@h/1?x=a@b", "pw@h/1?x=a", "pw"}},
		// No scheme: JuiceFS reads it as redis://.
		{":pw@h:6379/1", []string{":pw@h:6379/1", "pw"}},
		{"postgres://u@h/db?sslmode=disable&password=s3cr3t", []string{"postgres://u@h/db?sslmode=disable&password=s3cr3t", "s3cr3t"}},
		{"tikv://h1,h2/p?ca=/c&tls-key=k.pem&token=abc%2Bd", []string{"tikv://h1,h2/p?ca=/c&tls-key=k.pem&token=abc%2Bd", "abc%2Bd", "k.pem", "abc+d"}},
		{"redis://:a+b@h/1", []string{"redis://:a+b@h/1", "a+b", "a b"}},
		{"a-cluster-token", []string{"a-cluster-token"}},
	} {
		if got := Secrets(tt.in); !slices.Equal(got, tt.want) {
			t.Errorf("Secrets(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestString(t *testing.T) {
	u := "redis://:hunter2@10.0.0.5:6379/1"
	for _, tt := range []struct {
		msg     string
		secrets []string
		want    string
	}{
		{"no secret here", []string{u}, "no secret here"},
		{"open " + u + ": refused", []string{u}, "open <redacted>: refused"},
		{"auth hunter2 failed", []string{u}, "auth **** failed"},
		{"both " + u + " and hunter2", []string{u}, "both <redacted> and ****"},
		{"decoded p@ss", []string{"redis://u:p%40ss@h/1"}, "decoded ****"},
		{"query s3cr3t", []string{"postgres://u@h/db?password=s3cr3t"}, "query ****"},
		{"token t0k and " + u, []string{"", u, "t0k"}, "token <redacted> and <redacted>"},
		{"unchanged", nil, "unchanged"},
		// Short passwords are masked wherever they are, and never survive
		// in the placeholder or the masks.
		{"dial redis://:d@h/1: d", []string{"redis://:d@h/1"}, "****ial <re****acte****>: ****"},
		{"<redacted>", []string{"redis://:acted@h/1", "acted"}, "<red<red****>>"},
		{"pw ** here", []string{"redis://:**@h/1"}, "pw  here"},
	} {
		if got := String(tt.msg, tt.secrets...); got != tt.want {
			t.Errorf("String(%q, %q) = %q, want %q", tt.msg, tt.secrets, got, tt.want)
		}
	}
}

func TestError(t *testing.T) {
	u := "redis://:hunter2@h:6379/1"
	if Error(nil, u) != nil {
		t.Error("Error(nil) != nil")
	}
	plain := errors.New("plain")
	if Error(plain, u) != plain {
		t.Error("an error without secrets was wrapped")
	}
	err := Error(&fs.PathError{Op: "open", Path: u, Err: fs.ErrNotExist}, u)
	if msg := err.Error(); strings.Contains(msg, "hunter2") || msg != "open <redacted>: file does not exist" {
		t.Errorf("message %q", msg)
	}
	if !errors.Is(err, fs.ErrNotExist) {
		t.Error("the chain is lost")
	}
	var pe *fs.PathError
	if !errors.As(err, &pe) || pe.Path != u {
		t.Error("errors.As does not see the original")
	}
}

// FuzzRedact: whatever the URL around a password and a query secret, and
// wherever they appear in a message, neither is in the redacted output, nor
// is any of Secrets(url).
func FuzzRedact(f *testing.F) {
	f.Add("dial tcp: ", "user", "hunter2", "10.0.0.5:6379/1", "s3cr3t")
	f.Add("", "", "p%40ss", "h/1?x=a@b", "")
	f.Add("x", "u@v", "a@b", "h", "t&k")
	f.Add("<redacted>", "", "d", "h/1", "*")
	f.Add("**", "", "**", "", "")
	f.Fuzz(func(t *testing.T, text, user, pw, host, qsecret string) {
		if strings.Contains(user, ":") || strings.ContainsAny(qsecret, "?&;") {
			t.Skip() // then the password or the query secret is another string
		}
		u := "redis://" + user + ":" + pw + "@" + host
		if qsecret != "" {
			u += "?sslmode=x&password=" + qsecret
		}
		msg := text + pw + " " + u + text + qsecret + text
		out := String(msg, u)
		for _, s := range append(Secrets(u), pw, qsecret) {
			if s != "" && strings.Contains(out, s) {
				t.Fatalf("String(%q, %q) = %q still holds %q", msg, u, out, s)
			}
		}
		if err := Error(errors.New(msg), u); strings.Contains(err.Error(), u) || (pw != "" && strings.Contains(err.Error(), pw)) {
			t.Fatalf("Error: %q", err)
		}
	})
}
