package ringstore

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/juicedata/juicefs/pkg/object"

	"github.com/ringcache/ringcache/pkg/peer"
)

func TestOptionsValidate(t *testing.T) {
	mem, err := object.CreateStorage("mem", "b", "", "", "")
	if err != nil {
		t.Fatal(err)
	}
	good := func() Options {
		return Options{Origin: mem, LocalNode: "127.0.0.1:9700", Token: []byte(testToken), Volume: testVol, Prefix: testPrefix}
	}
	o := good()
	if err := o.Validate(); err != nil {
		t.Fatalf("good options: %v", err)
	}
	if !reflect.DeepEqual(o, good()) {
		t.Errorf("Validate modified the options: %+v", o)
	}
	o.EnsureDefaults()
	if o.Owners != 2 || o.AttemptTimeout != 30*time.Second || o.HedgeMin != 200*time.Millisecond || o.HedgeMax != 5*time.Second ||
		o.HedgeFactor != 3 || o.HedgeBudget != 0.1 || o.RefreshInterval != time.Second || o.ReadBudget != 15*time.Second ||
		o.ProbeTimeout != 200*time.Millisecond || o.RetryWindow != 30*time.Second || o.Logger == nil || o.Clock == nil {
		t.Errorf("defaults not filled: %+v", o)
	}
	if err := o.Validate(); err != nil {
		t.Errorf("defaulted options: %v", err)
	}
	again := o
	again.EnsureDefaults()
	if !reflect.DeepEqual(again, o) {
		t.Error("EnsureDefaults is not idempotent")
	}

	const rangeMsg = "owners >= 1"
	tests := []struct {
		name string
		mod  func(*Options)
		msg  string
	}{
		{"no origin", func(o *Options) { o.Origin = nil }, "origin is required"},
		{"no local node", func(o *Options) { o.LocalNode = "" }, "local node address is required"},
		{"no token", func(o *Options) { o.Token = nil }, "shorter than 16"},
		{"token with a space", func(o *Options) { o.Token = []byte("unit test cluster token") }, "printable ASCII"},
		{"no volume", func(o *Options) { o.Volume = "" }, "volume uuid"},
		{"no prefix", func(o *Options) { o.Prefix = "" }, "volume uuid"},
		{"prefix without slash", func(o *Options) { o.Prefix = "models" }, `prefix ending in "/"`},
		{"negative owners", func(o *Options) { o.Owners = -1 }, rangeMsg},
		{"negative attempt timeout", func(o *Options) { o.AttemptTimeout = -time.Second }, rangeMsg},
		{"negative hedge min", func(o *Options) { o.HedgeMin = -time.Millisecond }, rangeMsg},
		{"hedge min above max", func(o *Options) { o.HedgeMin, o.HedgeMax = time.Second, 100*time.Millisecond }, rangeMsg},
		{"hedge min above default max", func(o *Options) { o.HedgeMin = 10 * time.Second }, rangeMsg},
		{"hedge factor below 1", func(o *Options) { o.HedgeFactor = 0.5 }, rangeMsg},
		{"budget above 1", func(o *Options) { o.HedgeBudget = 1.5 }, rangeMsg},
		{"negative refresh", func(o *Options) { o.RefreshInterval = -time.Second }, rangeMsg},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := good()
			tt.mod(&o)
			err := o.Validate()
			if err == nil || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("got %v, want an error containing %q", err, tt.msg)
			}
			if strings.Contains(err.Error(), testToken) {
				t.Errorf("error %q holds the token", err)
			}
			if _, err := New(o); err == nil || !strings.HasPrefix(err.Error(), "ring storage: ") {
				t.Errorf("New: got %v, want the validation error", err)
			}
		})
	}
	// Every problem is reported at once.
	var o2 Options
	err = o2.Validate()
	for _, msg := range []string{"origin is required", "local node address is required", "shorter than 16", "volume uuid"} {
		if err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("empty options: %v; want it to mention %q", err, msg)
		}
	}
}

func TestEndpointRoundTrip(t *testing.T) {
	for _, e := range []Endpoint{
		{LocalNode: "127.0.0.1:9700", OriginStorage: "s3", OriginBucket: "https://s3.us-east-1.amazonaws.com/models", Volume: "5e0c-uuid", Prefix: "models/", TokenFile: "/etc/ringcache/token"},
		{LocalNode: "10.0.0.5:9700", OriginStorage: "minio", OriginBucket: "http://minio:9000/b?x=1&y=a b", Volume: "u", Prefix: "vol name/", TokenFile: "/tmp/a dir/tok&en", Owners: 3},
		{LocalNode: "[::1]:9700", OriginStorage: "file", OriginBucket: "/var/jfs/", Volume: "u", Prefix: "p/", TokenFile: "t", Owners: 1},
	} {
		s := e.String()
		if !strings.HasPrefix(s, "ringcache://"+e.LocalNode+"/?") {
			t.Errorf("%+v encodes as %q", e, s)
		}
		got, err := ParseEndpoint(s)
		if err != nil || got != e {
			t.Errorf("ParseEndpoint(%q) = %+v, %v; want %+v", s, got, err, e)
		}
	}
}

func TestParseEndpointErrors(t *testing.T) {
	good := Endpoint{LocalNode: "127.0.0.1:9700", OriginStorage: "s3", OriginBucket: "b", Volume: "u", Prefix: "p/", TokenFile: "/t"}
	if _, err := ParseEndpoint(good.String()); err != nil {
		t.Fatalf("good endpoint: %v", err)
	}
	mod := func(f func(*Endpoint)) string {
		e := good
		f(&e)
		return e.String()
	}
	tests := []struct {
		name, s, msg string
	}{
		{"empty", "", "want ringcache://"},
		{"wrong scheme", strings.Replace(good.String(), "ringcache://", "s3://", 1), "want ringcache://"},
		{"not a url", "ringcache://%zz", "want ringcache://"},
		{"no port", mod(func(e *Endpoint) { e.LocalNode = "127.0.0.1" }), "not host:port"},
		{"no host", mod(func(e *Endpoint) { e.LocalNode = "" }), "not host:port"},
		{"no storage", mod(func(e *Endpoint) { e.OriginStorage = "" }), "required"},
		{"ring over the ring", mod(func(e *Endpoint) { e.OriginStorage = StorageName }), "required"},
		{"no bucket", mod(func(e *Endpoint) { e.OriginBucket = "" }), "required"},
		{"no volume", mod(func(e *Endpoint) { e.Volume = "" }), "required"},
		{"prefix without slash", mod(func(e *Endpoint) { e.Prefix = "p" }), "required"},
		{"no token file", mod(func(e *Endpoint) { e.TokenFile = "" }), "required"},
		{"owners zero", good.String() + "&owners=0", "positive integer"},
		{"owners negative", good.String() + "&owners=-2", "positive integer"},
		{"owners not a number", good.String() + "&owners=two", "positive integer"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := ParseEndpoint(tt.s)
			if !errors.Is(err, ErrBadEndpoint) || !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("ParseEndpoint(%q) = %+v, %v; want ErrBadEndpoint containing %q", tt.s, e, err, tt.msg)
			}
			if e != (Endpoint{}) {
				t.Errorf("a bad endpoint returned %+v", e)
			}
		})
	}
}

func writeToken(t *testing.T, tok string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(p, []byte(tok), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestCreator(t *testing.T) {
	c := newCluster(t, 2)
	ep := Endpoint{
		LocalNode: c.nodes[0].addr, OriginStorage: "mem", OriginBucket: "creator-bucket", Volume: testVol,
		Prefix: testPrefix, TokenFile: writeToken(t, "  "+testToken+"\n"), Owners: 1,
	}
	create := Creator(Options{RefreshInterval: 50 * time.Millisecond, Owners: 2, HedgeMax: time.Second})
	made, err := create(ep.String(), "", "", "")
	if err != nil {
		t.Fatal(err)
	}
	s, ok := made.(*Store)
	if !ok {
		t.Fatalf("Creator made a %T", made)
	}
	t.Cleanup(s.Shutdown)
	if s.o.Owners != 1 || s.o.HedgeMax != time.Second || string(s.o.Token) != testToken || s.o.Volume != testVol || s.o.Prefix != testPrefix || s.o.LocalNode != ep.LocalNode {
		t.Errorf("options = %+v; want the endpoint's over the base", s.o)
	}
	if got := s.o.Origin.String(); got != "mem://creator-bucket/" {
		t.Errorf("origin = %s", got)
	}
	if len(s.Members()) != 2 {
		t.Errorf("members = %v", s.Members())
	}
	// The bucket of this store's origin is empty: the bytes come from the
	// ring (whose nodes read the cluster's bucket).
	k, data := c.block(12345, ownedBy(c.nodes[1].addr))
	get(t, s, testPrefix+k, 0, -1, data)
	if st := s.Stats(); st.PeerReads != 1 {
		t.Errorf("stats = %+v; want a peer read", st)
	}

	errTests := []struct {
		name, endpoint, msg string
		is                  error
	}{
		{"bad endpoint", "s3://bucket", "invalid ringcache endpoint", ErrBadEndpoint},
		{"missing token file", withTokenFile(ep, filepath.Join(t.TempDir(), "nope")), "read cluster token", nil},
		{"short token", withTokenFile(ep, writeToken(t, "short\n")), "shorter than 16", peer.ErrBadToken},
		{"unknown origin storage", func() string { e := ep; e.OriginStorage = "nosuch"; return e.String() }(), "open nosuch origin", nil},
	}
	for _, tt := range errTests {
		t.Run(tt.name, func(t *testing.T) {
			made, err := create(tt.endpoint, "", "", "")
			if err == nil || !strings.Contains(err.Error(), tt.msg) || (tt.is != nil && !errors.Is(err, tt.is)) {
				t.Errorf("got %v, %v; want an error containing %q", made, err, tt.msg)
			}
			if err != nil && strings.Contains(err.Error(), testToken) {
				t.Errorf("error %q holds the token", err)
			}
		})
	}

	// OriginCreator opens only the origin.
	o, err := OriginCreator()(ep.String(), "", "", "")
	if err != nil {
		t.Fatal(err)
	}
	if _, isRing := o.(*Store); isRing || o.String() != "mem://creator-bucket/" {
		t.Errorf("OriginCreator made %T %s; want the mem origin", o, o)
	}
	if _, err := OriginCreator()("ringcache://nohost/?x=1", "", "", ""); !errors.Is(err, ErrBadEndpoint) {
		t.Errorf("OriginCreator of a bad endpoint: %v", err)
	}
}

func withTokenFile(e Endpoint, p string) string {
	e.TokenFile = p
	return e.String()
}
