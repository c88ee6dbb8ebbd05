package main

import (
	"context"
	"io"
	"strings"
	"testing"
)

// TestMountSizeFlags: --cache-size and --buffer-size take a bare MiB count
// or the size syntax, and bad sizes are refused before anything starts.
func TestMountSizeFlags(t *testing.T) {
	t.Setenv("RINGCACHE_META_URL", "redis://127.0.0.1:1/1") // never dialled: the flags are refused first
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--buffer-size", "100KiB"}, "not a whole number of MiB"},
		{[]string{"--buffer-size", "16Mi"}, "--buffer-size >= 32"},
		{[]string{"--buffer-size", "16"}, "--buffer-size >= 32"},
		{[]string{"--cache-size", "-1"}, "not negative"},
		{[]string{"--cache-size", "lots"}, "a bare number is MiB"},
	} {
		err := runMount(context.Background(), append(tc.args, "/nonexistent-mountpoint"), io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("mount %v: %v, want an error containing %q", tc.args, err, tc.want)
		}
	}
}
