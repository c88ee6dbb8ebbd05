package cli

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestReadMetaURL(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "url")
	os.WriteFile(file, []byte(" redis://:secret@file:6379/1\n"), 0o600)
	env := map[string]string{"RINGCACHE_META_URL": "redis://:secret@env:6379/1", "RINGCACHE_VOLUME_LLAMA_3": "redis://:secret@vol:6379/1"}
	getenv := func(k string) string { return env[k] }
	// 1. the file, before either variable.
	if u, err := ReadMetaURL(file, "llama-3", getenv); err != nil || u != "redis://:secret@file:6379/1" {
		t.Errorf("file: %q, %v", u, err)
	}
	// 2. RINGCACHE_META_URL, before the volume's variable.
	if u, err := ReadMetaURL("", "llama-3", getenv); err != nil || u != "redis://:secret@env:6379/1" {
		t.Errorf("RINGCACHE_META_URL: %q, %v", u, err)
	}
	if u, err := ReadMetaURL("", "", getenv); err != nil || u != "redis://:secret@env:6379/1" {
		t.Errorf("RINGCACHE_META_URL without a volume: %q, %v", u, err)
	}
	delete(env, "RINGCACHE_META_URL")
	// 3. RINGCACHE_VOLUME_<NAME>, only for a known volume.
	if u, err := ReadMetaURL("", "llama-3", getenv); err != nil || u != "redis://:secret@vol:6379/1" {
		t.Errorf("RINGCACHE_VOLUME_LLAMA_3: %q, %v", u, err)
	}
	if _, err := ReadMetaURL("", "", getenv); !errors.Is(err, ErrUsage) || !strings.Contains(err.Error(), "RINGCACHE_META_URL") || strings.Contains(err.Error(), "secret") {
		t.Errorf("none without a volume: %v", err)
	}
	_, err := ReadMetaURL("", "other", getenv)
	if !errors.Is(err, ErrUsage) || !strings.Contains(err.Error(), "RINGCACHE_VOLUME_OTHER") || strings.Contains(err.Error(), "secret") {
		t.Errorf("none: %v", err)
	}
	// A bad file never falls back to the environment.
	env["RINGCACHE_META_URL"] = "redis://:secret@env:6379/1"
	os.WriteFile(file, []byte("\n"), 0o600)
	if _, err := ReadMetaURL(file, "x", getenv); !errors.Is(err, ErrUsage) || !strings.HasPrefix(err.Error(), "--meta-url-file") || !strings.Contains(err.Error(), "is empty") {
		t.Errorf("empty file: %v", err)
	}
	if _, err := ReadMetaURL(filepath.Join(dir, "missing"), "x", getenv); err == nil || errors.Is(err, ErrUsage) || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}

func TestVolumeEnv(t *testing.T) {
	if got := VolumeEnv("llama-3"); got != "RINGCACHE_VOLUME_LLAMA_3" {
		t.Errorf("VolumeEnv = %q", got)
	}
}
