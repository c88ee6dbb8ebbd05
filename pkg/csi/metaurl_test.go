package csi

import (
	"errors"
	"net/url"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/ringcache/ringcache/pkg/redact"
)

// TestParseMetaIdentity: the crafted URLs of the Trust I finding, and their
// variants, are refused; equal engines compare equal whatever the password.
func TestParseMetaIdentity(t *testing.T) {
	for _, raw := range []string{
		"redis://:x@127.0.0.1:6380/1#@127.0.0.1:6379/1",
		"redis://:x@127.0.0.1:6380/1?tls-server-name=@127.0.0.1:6379/1",
		"redis://:x@127.0.0.1:6380/1?route-read=@127.0.0.1:6379/1",
		"redis://:x@127.0.0.1:6380/1/@127.0.0.1:6379/1",
		"redis://u:x@127.0.0.1:6380/1?foo=bar",
		"redis://u:x@127.0.0.1:6379/1?db=2",
		"redis://u:x@127.0.0.1:6379?db=1",
		"redis://u:x@127.0.0.1:6379/1#",
		"redis://u:x@127.0.0.1:6379/01",
		"redis://u:x@127.0.0.1:6379/1/2",
		"redis://u:x@127.0.0.1:6379/%31",
		"redis://u:x@127.0.0.1:6379/1 @127.0.0.1:6380/1",
		"redis://u:x@mymaster,127.0.0.1:26379/1",
		"redis://u:x@127.0.0.1:6379,127.0.0.1:6380/1",
		"redis://u:x@127.0.0.1:/1",
		"redis://u:x@127.0.0.1:0/1",
		"redis://u:x@127.0.0.1:06379/1",
		"redis://u:x@::1:6379/1",
		"redis://u:x@[127.0.0.1]:6379/1",
		"redis://u:x@/1",
		"redis://u:x@127.0.0.1%2f:6379/1",
		"redis:/127.0.0.1:6379/1",
		"REDIS://127.0.0.1:6379/1",
		"sqlite3:///var/lib/x.db",
		"unix:///tmp/redis.sock",
		"redis://u:x@127.0.0.1:6379/1?tls-ca-cert-file=/dev/zero",
		"redis://u:x@127.0.0.1:6379/1\n",
		"redis://u:x@127.0.0.1\\@6380:6379/1",
		"redis://" + strings.Repeat("a", 3000) + ":6379/1",
	} {
		if id, err := ParseMetaIdentity(raw, true); err == nil {
			t.Errorf("%q accepted as %v", raw, id)
		} else if !errors.Is(err, ErrMetaURLIdentity) || strings.Contains(err.Error(), ":x@") {
			t.Errorf("%q: error %v", raw, err)
		}
	}
	same := []string{
		"redis://127.0.0.1:6379/1",
		"redis://:pw@127.0.0.1:6379/1",
		"redis://:other@127.0.0.1:6379/1?read-timeout=3s",
		"redis://127.0.0.1/1",
	}
	want := MetaIdentity{Scheme: "redis", Addr: "127.0.0.1:6379", DB: 1}
	for _, raw := range same {
		id, err := ParseMetaIdentity(raw, true)
		if err != nil || id != want {
			t.Errorf("%q: %v %v, want %v", raw, id, err, want)
		}
	}
	id, err := ParseMetaIdentity("rediss://Tenant:p%40ss@Cache.Example.COM:7000/3?tls-ca-cert-file=/etc/ca.pem", false)
	if err != nil || id != (MetaIdentity{Scheme: "rediss", User: "Tenant", Addr: "cache.example.com:7000", DB: 3}) {
		t.Errorf("node URL with a CA file: %v %v", id, err)
	}
	if s := id.String(); s != "rediss://Tenant@cache.example.com:7000/3" || id.Address() != "cache.example.com:7000/3" {
		t.Errorf("String %q, Address %q", s, id.Address())
	}
	if id, err := ParseMetaIdentity("redis://u:p@ss@[::1]:6379/2", true); err != nil || id.Addr != "[::1]:6379" || id.User != "u" {
		t.Errorf("IPv6 and '@' in a password: %v %v", id, err)
	}
}

// juiceFSRedisOptions is what JuiceFS v1.3.1's Redis engine hands go-redis
// for raw (pkg/meta/redis.go: its own query keys taken out, then
// redis.ParseURL).
func juiceFSRedisOptions(raw string) (*redis.Options, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, err
	}
	values := u.Query()
	for k := range metaQueryKeys {
		values.Del(k)
	}
	for k := range metaFileQueryKeys {
		values.Del(k)
	}
	u.RawQuery = values.Encode()
	return redis.ParseURL(u.String())
}

// FuzzMetaURLIdentity: whatever ParseMetaIdentity accepts, JuiceFS and
// go-redis dial exactly the identity it returns (address, database,
// user), and a URL it accepts from a request it accepts from the node.
func FuzzMetaURLIdentity(f *testing.F) {
	for _, s := range []string{
		"redis://:x@127.0.0.1:6380/1#@127.0.0.1:6379/1",
		"redis://:x@127.0.0.1:6380/1?tls-server-name=@127.0.0.1:6379/1",
		"redis://u:p@127.0.0.1:6379/1?db=2",
		"redis://u:p@ss@[::1]:6379/3?read-timeout=5s",
		"rediss://default@Cache.Example.com/0",
		"redis://127.0.0.1:6379",
		"redis://%75ser:pw@h:1/0",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		id, err := ParseMetaIdentity(raw, true)
		if err != nil {
			if !errors.Is(err, ErrMetaURLIdentity) {
				t.Fatalf("error of another class: %v", err)
			}
			return
		}
		if _, err := ParseMetaIdentity(raw, false); err != nil {
			t.Fatalf("accepted from a request but not from the node: %v", err)
		}
		o, err := juiceFSRedisOptions(raw)
		if err != nil {
			t.Fatalf("accepted %q as %v, but go-redis refuses it: %v", raw, id, err)
		}
		if o.Addr != id.Addr && !strings.EqualFold(o.Addr, id.Addr) {
			t.Fatalf("%q: identity %v, go-redis dials %s", raw, id, o.Addr)
		}
		if o.DB != id.DB || o.Username != id.User || o.Network != "tcp" {
			t.Fatalf("%q: identity %v, go-redis db %d user %q network %s", raw, id, o.DB, o.Username, o.Network)
		}
		if strings.Contains(id.String(), "@") && id.User == "" {
			t.Fatalf("identity string %q", id.String())
		}
		for _, pw := range redact.Secrets(raw) {
			if len(pw) >= 3 && pw != raw && strings.Contains(id.String(), pw) && !strings.Contains(id.User+id.Addr, pw) {
				t.Fatalf("identity string %q holds the password", id.String())
			}
		}
	})
}
