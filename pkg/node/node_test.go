package node

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const testToken = "a-long-enough-cluster-token"

var testGossipKey = []byte("0123456789abcdef0123456789abcdef")

func TestOptionsValidate(t *testing.T) {
	good := func() Options {
		return Options{DataDir: "/d", CapacityBytes: 600 << 30, Token: []byte(testToken), GossipKeys: [][]byte{testGossipKey},
			Volumes: []VolumeSource{{Name: "models", MetaURL: "redis://x/1"}}}
	}
	o := good()
	o.EnsureDefaults()
	if err := o.Validate(); err != nil {
		t.Fatal(err)
	}
	if o.Weight != 3 || o.MinFreeBytes != 1<<30 || o.PeerListen != ":9700" || o.HTTPListen != DefaultHTTPListen || o.GossipProfile != "lan" || o.PlacementVersion != 1 || o.Registry == nil || o.Clock == nil {
		t.Errorf("defaults: %+v", o)
	}
	tests := []struct {
		name string
		mod  func(*Options)
		msg  string
	}{
		{"no data dir", func(o *Options) { o.DataDir = "" }, "data dir is required"},
		{"no capacity", func(o *Options) { o.CapacityBytes = 0 }, "capacity must be positive"},
		{"weight", func(o *Options) { o.Weight = 9 }, "weight must be 1..8"},
		{"token", func(o *Options) { o.Token = []byte("x") }, "cluster token"},
		{"no gossip key", func(o *Options) { o.GossipKeys = nil }, "a gossip key is required (--gossip-key-file)"},
		{"short gossip key", func(o *Options) { o.GossipKeys = [][]byte{testGossipKey[:16]} }, "gossip key 1 is 16 bytes, want 32"},
		{"gossip key from the token", func(o *Options) { o.GossipKeys = [][]byte{testGossipKey, legacyGossipKey([]byte(testToken))} }, "gossip key 2 is the cluster token or derived from it"},
		{"gossip key is the token", func(o *Options) { o.Token = []byte(base64.StdEncoding.EncodeToString(testGossipKey)) }, "gossip key 1 is the cluster token"},
		{"too many gossip keys", func(o *Options) { o.GossipKeys = make([][]byte, 5) }, "5 gossip keys, at most 4"},
		{"volumes", func(o *Options) { o.Volumes = nil }, "at least one volume"},
		{"volume url", func(o *Options) { o.Volumes = []VolumeSource{{Name: "a"}} }, `volume "a" needs a name and a metadata url`},
		{"bandwidth", func(o *Options) { o.OriginBandwidth = -1 }, "must not be negative"},
	}
	for _, tt := range tests {
		o := good()
		tt.mod(&o)
		o.EnsureDefaults()
		if err := o.Validate(); err == nil || !strings.Contains(err.Error(), tt.msg) {
			t.Errorf("%s: got %v, want %q", tt.name, err, tt.msg)
		}
	}
	// Huge capacities are capped at the largest weight.
	o = good()
	o.CapacityBytes = 100 << 40
	if o.EnsureDefaults(); o.Weight != 8 {
		t.Errorf("weight for 100 TiB = %d, want 8", o.Weight)
	}
}

// TestEnsureDefaultsIdempotent: EnsureDefaults twice is EnsureDefaults
// once, and it never overrides a field that is set.
func TestEnsureDefaultsIdempotent(t *testing.T) {
	o := Options{CapacityBytes: 600 << 30, HTTPListen: HTTPOff, Weight: 2}
	o.EnsureDefaults()
	once := o
	o.EnsureDefaults()
	if o.HTTPListen != HTTPOff || o.Weight != 2 || o.PeerListen != once.PeerListen || o.Registry != once.Registry || o.ShutdownGrace != DefaultShutdownGrace {
		t.Errorf("after two EnsureDefaults: %+v", o)
	}
}

func TestNodeIDPersists(t *testing.T) {
	dir := t.TempDir()
	id, err := loadNodeID(dir)
	if err != nil || id == "" {
		t.Fatalf("first id %q, %v", id, err)
	}
	again, err := loadNodeID(dir)
	if err != nil || again != id {
		t.Errorf("second id %q, want %q (err %v)", again, id, err)
	}
	os.WriteFile(filepath.Join(dir, "node-id"), []byte("  \n"), 0o644)
	if _, err := loadNodeID(dir); err == nil {
		t.Error("an empty node-id file was accepted")
	}
}

func TestAdvertiseHost(t *testing.T) {
	for _, tt := range []struct{ adv, listen, want, err string }{
		{"10.0.0.5", ":9700", "10.0.0.5", ""},
		{"", "127.0.0.1:9700", "127.0.0.1", ""},
		{"", ":9700", "", "advertise address is required"},
		{"", "0.0.0.0:9700", "", "advertise address is required"},
		{"node.example", ":9700", "", "is not an IP"},
	} {
		got, err := advertiseHost(tt.adv, tt.listen)
		if got != tt.want || (tt.err == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.err)) {
			t.Errorf("advertiseHost(%q, %q) = %q, %v", tt.adv, tt.listen, got, err)
		}
	}
}
