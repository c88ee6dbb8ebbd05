package csi

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"unicode"
)

// ErrMetaURLIdentity is the class of errors of ParseMetaIdentity: a metadata
// URL whose engine cannot be told for certain.
var ErrMetaURLIdentity = errors.New("metadata URL refused")

// maxMetaURLLen bounds a metadata URL.
const maxMetaURLLen = 2048

// MetaIdentity is the metadata engine a metadata URL makes JuiceFS connect
// to: two URLs with equal identities name the same engine and database,
// whatever their passwords and timeouts.
type MetaIdentity struct {
	Scheme string // redis or rediss
	User   string // the user name ("" for the default user)
	Addr   string // host:port as dialled, the host lower-case
	DB     int    // the database number
}

// String is the identity for logs: scheme://user@host:port/db, never a
// password.
func (id MetaIdentity) String() string {
	u := ""
	if id.User != "" {
		u = url.User(id.User).String() + "@"
	}
	return fmt.Sprintf("%s://%s%s/%d", id.Scheme, u, id.Addr, id.DB)
}

// Address is host:port/db, what the logs show as the address dialled.
func (id MetaIdentity) Address() string { return fmt.Sprintf("%s/%d", id.Addr, id.DB) }

// metaQueryKeys are the query keys JuiceFS's Redis engine takes out of the
// URL before go-redis sees it (pkg/meta/redis.go of v1.3.1) that do not
// change which server is dialled. Every other key is refused: go-redis
// reads some (e.g. "db") that would change the database.
var metaQueryKeys = map[string]bool{
	"min-retry-backoff": true, "min_retry_backoff": true,
	"max-retry-backoff": true, "max_retry_backoff": true,
	"read-timeout": true, "read_timeout": true,
	"write-timeout": true, "write_timeout": true,
	"route-read": true, "insecure-skip-verify": true, "tls-server-name": true,
}

// metaFileQueryKeys name files on the node (client certificates); a request
// must not make the node read files it chooses, so only the node's own URLs
// may carry them.
var metaFileQueryKeys = map[string]bool{"tls-cert-file": true, "tls-key-file": true, "tls-ca-cert-file": true}

// ParseMetaIdentity parses a Redis metadata URL (redis:// or rediss://, one
// server) into the identity of the engine JuiceFS would connect to. It is
// strict where JuiceFS and go-redis are lenient, so that the identity is
// never other than what they dial: it refuses control characters and
// spaces, fragments ('#'), '@' anywhere but in the user info, query keys
// other than JuiceFS's timeouts and TLS options (and, fromRequest, the TLS
// file options), server lists (Sentinel or cluster), and database paths
// other than "/N". Errors wrap ErrMetaURLIdentity and never contain the
// URL or its password.
func ParseMetaIdentity(raw string, fromRequest bool) (MetaIdentity, error) {
	fail := func(format string, a ...any) (MetaIdentity, error) {
		return MetaIdentity{}, fmt.Errorf("%w: "+format, append([]any{ErrMetaURLIdentity}, a...)...)
	}
	if len(raw) > maxMetaURLLen {
		return fail("longer than %d bytes", maxMetaURLLen)
	}
	if strings.IndexFunc(raw, func(r rune) bool { return unicode.IsControl(r) || unicode.IsSpace(r) || r == unicode.ReplacementChar }) >= 0 {
		return fail("contains spaces, control characters or invalid UTF-8")
	}
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return fail("not a URL (want redis://[user:password@]host:port/db)")
	}
	if scheme != "redis" && scheme != "rediss" {
		return fail("scheme %q: only redis:// and rediss:// URLs can be compared", scheme)
	}
	if strings.Contains(rest, "#") {
		return fail("has a fragment ('#'); percent-encode it in a password")
	}
	// The authority ends at the first '/' or '?' (url.Parse's rule once
	// the fragment is gone); the user info ends at its last '@'.
	end := strings.IndexAny(rest, "/?")
	if end < 0 {
		end = len(rest)
	}
	authority, tail := rest[:end], rest[end:]
	if strings.Contains(tail, "@") {
		return fail("has '@' outside the user info")
	}
	if strings.Contains(tail, "\\") || strings.Contains(authority, "\\") {
		return fail("has a backslash")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return fail("does not parse")
	}
	if u.Opaque != "" || u.Fragment != "" || u.RawFragment != "" || u.Scheme != scheme {
		return fail("is not a plain redis URL")
	}
	hostport := authority
	if at := strings.LastIndex(authority, "@"); at >= 0 {
		hostport = authority[at+1:]
	}
	if u.Host != hostport || hostport == "" {
		return fail("has no single host")
	}
	if strings.ContainsAny(hostport, ",%") {
		return fail("lists several servers (Sentinel or cluster URLs cannot be compared) or has an escape in the host")
	}
	host, port := u.Hostname(), u.Port()
	if host == "" {
		return fail("has no host")
	}
	if strings.HasPrefix(hostport, "[") {
		if ip := net.ParseIP(host); ip == nil || ip.To4() != nil {
			return fail("bracketed host is not an IPv6 address")
		}
	} else if strings.Count(hostport, ":") > 1 {
		return fail("IPv6 addresses need brackets")
	}
	for _, r := range host {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '-' || r == ':') {
			return fail("host has characters other than letters, digits, '.', '-' and ':'")
		}
	}
	if port == "" {
		if strings.HasSuffix(hostport, ":") {
			return fail("empty port")
		}
		port = "6379"
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 || strconv.Itoa(n) != port {
		return fail("port is not a number from 1 to 65535")
	}
	id := MetaIdentity{Scheme: scheme, Addr: net.JoinHostPort(strings.ToLower(host), port)}
	if u.User != nil {
		id.User = u.User.Username()
	}
	switch p := u.EscapedPath(); {
	case p == "" || p == "/":
	case strings.Count(p, "/") == 1:
		db := p[1:]
		n, err := strconv.Atoi(db)
		if err != nil || n < 0 || n > 1<<20 || strconv.Itoa(n) != db {
			return fail("database is not a number")
		}
		id.DB = n
	default:
		return fail("path is not /<database number>")
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return fail("query does not parse")
	}
	for k := range q {
		switch {
		case metaQueryKeys[k]:
		case metaFileQueryKeys[k] && !fromRequest:
		default:
			return fail("query key %q is not allowed", truncate(k, 64))
		}
	}
	return id, nil
}

// truncate cuts s to at most n bytes for messages.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
