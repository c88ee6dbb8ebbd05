package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestServeRejectsBadFlags: bad flags exit 2 with a clear message and
// nothing is created.
func TestServeRejectsBadFlags(t *testing.T) {
	dir := t.TempDir()
	tok := writeFile(t, dir, "token", "a-long-enough-cluster-token\n")
	short := writeFile(t, dir, "short", "short")
	gk := writeFile(t, dir, "gossip-key", testGossipKeyB64+"\n")
	shortKey := writeFile(t, dir, "gossip-key-16", base64.StdEncoding.EncodeToString([]byte("0123456789abcdef"))+"\n")
	rawKey := writeFile(t, dir, "gossip-key-raw", "0123456789abcdef0123456789abcdef")
	legacy := sha256.Sum256([]byte("ringcache gossip key\x00a-long-enough-cluster-token"))
	legacyKey := writeFile(t, dir, "gossip-key-legacy", base64.StdEncoding.EncodeToString(legacy[:]))
	vols := filepath.Join(dir, "vols")
	os.Mkdir(vols, 0o755)
	writeFile(t, vols, "models", "redis://127.0.0.1:1/1")
	data := filepath.Join(dir, "data")
	base := []string{"--data-dir", data, "--capacity", "1GiB", "--token-file", tok, "--gossip-key-file", gk, "--volumes-dir", vols, "--advertise-addr", "127.0.0.1"}
	t.Setenv("RINGCACHE_GOSSIP_KEY_FILE", "")
	tests := []struct {
		name string
		args []string
		msg  string
	}{
		{"unknown flag", append(base, "--nope"), "flag provided but not defined"},
		{"bad capacity", append(base, "--capacity", "lots"), "invalid byte count"},
		{"no capacity", []string{"--data-dir", data, "--token-file", tok, "--gossip-key-file", gk, "--volumes-dir", vols}, "capacity must be positive"},
		{"no data dir", []string{"--capacity", "1GiB", "--token-file", tok, "--gossip-key-file", gk, "--volumes-dir", vols}, "data dir is required"},
		{"no gossip key", []string{"--data-dir", data, "--capacity", "1GiB", "--token-file", tok, "--volumes-dir", vols}, "--gossip-key-file (or RINGCACHE_GOSSIP_KEY_FILE) is required"},
		{"missing gossip key file", append(base, "--gossip-key-file", filepath.Join(dir, "nope")), "read gossip key file"},
		{"16-byte gossip key", append(base, "--gossip-key-file", shortKey), "line 1 is 24 characters, want 44"},
		{"raw gossip key", append(base, "--gossip-key-file", rawKey), "line 1 is 32 characters, want 44"},
		{"token-derived gossip key", append(base, "--gossip-key-file", legacyKey), "gossip key 1 is the cluster token or derived from it"},
		{"no token", []string{"--data-dir", data, "--capacity", "1GiB", "--volumes-dir", vols}, "--token-file"},
		{"short token", append(base, "--token-file", short), "shorter than 16"},
		{"no volumes", []string{"--data-dir", data, "--capacity", "1GiB", "--token-file", tok, "--gossip-key-file", gk}, "no volumes"},
		{"missing volumes dir", append(base, "--volumes-dir", filepath.Join(dir, "nope")), "volumes dir"},
		{"bad profile", append(base, "--gossip-profile", "wan"), "--gossip-profile must be lan or local"},
		{"bad weight", append(base, "--weight", "99"), "weight must be 1..8"},
		{"bad concurrency", append(base, "--origin-concurrency", "0"), "--origin-concurrency must be at least 1"},
		{"bad log level", append(base, "--log-level", "loud"), "--log-level"},
		{"extra args", append(base, "extra"), "unexpected arguments"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), append([]string{"serve"}, tt.args...), &stdout, &stderr)
			if code != 2 || !strings.Contains(stderr.String(), tt.msg) {
				t.Errorf("exit %d, stderr %q; want 2 and %q", code, stderr.String(), tt.msg)
			}
			if _, err := os.Stat(data); !os.IsNotExist(err) {
				t.Errorf("bad flags created the data dir")
			}
		})
	}
}

// testGossipKeyB64 is a gossip key file line.
const testGossipKeyB64 = "q83vASNFZ4mrze8BI0VniavN7wEjRWeJq83vASNFZ4k="

func TestServeNeverLogsSecrets(t *testing.T) {
	dir := t.TempDir()
	tok := writeFile(t, dir, "token", "a-long-enough-cluster-token\n")
	gk := writeFile(t, dir, "gossip-key", testGossipKeyB64+"\n")
	var stdout, stderr bytes.Buffer
	t.Setenv("RINGCACHE_VOLUME_MODELS", "redis://:hunter2-secret@127.0.0.1:1/1")
	t.Setenv("RINGCACHE_GOSSIP_KEY_FILE", gk) // the environment works like the flag
	code := run(context.Background(), []string{"serve", "--data-dir", filepath.Join(dir, "d"), "--capacity", "1GiB",
		"--token-file", tok, "--listen", "127.0.0.1:0", "--gossip-listen", "127.0.0.1:0", "--http-listen", "off", "--log-level", "debug"}, &stdout, &stderr)
	if code != 1 {
		t.Errorf("exit %d with an unreachable metadata engine, want 1; stderr %s", code, stderr.String())
	}
	out := stderr.String() + stdout.String()
	for _, secret := range []string{"hunter2", "a-long-enough-cluster-token", testGossipKeyB64[:16]} {
		if strings.Contains(out, secret) {
			t.Errorf("%q appeared in the output: %s", secret, out)
		}
	}
}

func TestLoadVolumes(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "models", "redis://a/1\n")
	writeFile(t, dir, "..data", "ignored")
	os.Mkdir(filepath.Join(dir, "..2026_11_28"), 0o755)
	got, err := loadVolumes(dir, []string{"RINGCACHE_VOLUME_TEAM_A=redis://b/2", "PATH=/bin", "RINGCACHE_VOLUME_=x"})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Name != "models" || got[0].MetaURL != "redis://a/1" || got[1].Name != "team-a" || got[1].MetaURL != "redis://b/2" {
		t.Errorf("got %+v", got)
	}
	if _, err := loadVolumes(dir, []string{"RINGCACHE_VOLUME_MODELS=redis://c/3"}); err == nil || !strings.Contains(err.Error(), "both") {
		t.Errorf("duplicate volume: %v", err)
	}
	writeFile(t, dir, "empty", " \n")
	if _, err := loadVolumes(dir, nil); err == nil || !strings.Contains(err.Error(), "empty") {
		t.Errorf("empty url file: %v", err)
	}
}

func TestUsage(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), nil, &stdout, &stderr); code != 2 || !strings.Contains(stderr.String(), "Usage") {
		t.Errorf("no args: exit %d, %q", code, stderr.String())
	}
	stderr.Reset()
	if code := run(context.Background(), []string{"frobnicate"}, &stdout, &stderr); code != 2 || !strings.Contains(stderr.String(), `unknown command "frobnicate"`) {
		t.Errorf("unknown command: exit %d, %q", code, stderr.String())
	}
	stderr.Reset()
	if code := run(context.Background(), []string{"serve", "--help"}, &stdout, &stderr); code != 0 || !strings.Contains(stderr.String(), "RINGCACHE_VOLUME_<NAME>") {
		t.Errorf("serve --help: exit %d, %q", code, stderr.String())
	}
}
