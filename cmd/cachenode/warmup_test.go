package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/ringcache/ringcache/internal/bytesize"
	"github.com/ringcache/ringcache/pkg/juice"
	"github.com/ringcache/ringcache/pkg/prefetch"
)

func TestWarmupBadFlags(t *testing.T) {
	dir := t.TempDir()
	tok := filepath.Join(dir, "token")
	os.WriteFile(tok, []byte("warmup-test-token-0123456789\n"), 0o600)
	empty := filepath.Join(dir, "empty-list")
	os.WriteFile(empty, []byte("# nothing\n\n"), 0o644)
	t.Setenv("RINGCACHE_TOKEN_FILE", "")
	t.Setenv("RINGCACHE_META_URL", "")
	base := []string{"warmup", "--token-file", tok, "--volume", "models"}
	tests := []struct {
		args []string
		msg  string
	}{
		{[]string{"warmup", "/x"}, "--volume is required"},
		{[]string{"warmup", "--volume", "models", "/x"}, "--token-file (or RINGCACHE_TOKEN_FILE) is required"},
		{append(base[:1:1], "--volume", "models", "--token-file", tok), "no paths"},
		{append(slices.Clone(base), "--check", "--dry-run", "/x"), "exclude each other"},
		{append(slices.Clone(base), "--background", "--check", "/x"), "--background is for warm-ups"},
		{append(slices.Clone(base), "--log-file", "/tmp/l", "/x"), "--log-file is for --background"},
		{append(slices.Clone(base), "--replicas", "0", "/x"), "--replicas must be at least 1"},
		{append(slices.Clone(base), "--concurrency", "0", "/x"), "--concurrency must be at least 1"},
		{append(slices.Clone(base), "--batch", "5000", "/x"), "--batch must be in"},
		{append(slices.Clone(base), "--bandwidth", "lots", "/x"), "invalid byte count"},
		{append(slices.Clone(base), "--no-such-flag", "/x"), "flag provided but not defined"},
		{append(slices.Clone(base), "--file-list", empty), "holds no paths"},
		{append(slices.Clone(base), "--file-list", filepath.Join(dir, "missing")), "file list"},
		{append(slices.Clone(base), "/x"), "no metadata url for volume \"models\""},
		// Both binary forms pass the flag (and fail later, on the URL).
		{append(slices.Clone(base), "--bandwidth", "40Mi", "/x"), "no metadata url for volume"},
		{append(slices.Clone(base), "--bandwidth", "40MiB", "/x"), "no metadata url for volume"},
		{append(slices.Clone(base), "--bandwidth", "40Mx", "/x"), "40Mi or 40MiB"},
	}
	for _, tt := range tests {
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), tt.args, &stdout, &stderr)
		if code != 2 || !strings.Contains(stderr.String(), tt.msg) {
			t.Errorf("%q: exit %d, stderr %q; want 2 and %q", tt.args, code, stderr.String(), tt.msg)
		}
	}
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"warmup", "--help"}, &stdout, &stderr); code != 0 || !strings.Contains(stderr.String(), "RINGCACHE_META_URL") {
		t.Errorf("warmup --help: exit %d, %q", code, stderr.String())
	}
}

// TestBandwidthMatchesWarmupQuantity: the binary quantities a Warmup's
// bandwidth takes mean the same count as a --bandwidth flag; the IEC form
// is the flags' alone (the API server refuses it).
func TestBandwidthMatchesWarmupQuantity(t *testing.T) {
	for _, s := range []string{"200Mi", "40Ki", "1Gi", "1.5Gi", "2Ti", "1Pi", "512", "0"} {
		q, err := resource.ParseQuantity(s)
		if err != nil {
			t.Fatalf("quantity %q: %v", s, err)
		}
		n, err := bytesize.Parse(s)
		if err != nil || n != q.Value() {
			t.Errorf("--bandwidth %s = %d, %v; the Warmup's bandwidth %s = %d", s, n, err, s, q.Value())
		}
	}
	if _, err := resource.ParseQuantity("200MiB"); err == nil {
		t.Error("200MiB is a quantity: update docs/operations.md and docs/warmup.md")
	}
}

func TestReadFileList(t *testing.T) {
	f := filepath.Join(t.TempDir(), "list")
	os.WriteFile(f, []byte("# models\n/llama\n\n  /mistral/config.json  \n#/skipped\n"), 0o644)
	got, err := readFileList(f)
	if err != nil || !slices.Equal(got, []string{"/llama", "/mistral/config.json"}) {
		t.Errorf("got %q, %v", got, err)
	}
}

func TestProgressLine(t *testing.T) {
	p := prefetch.Progress{Files: 4, FilesDone: 1, Blocks: 10, BlocksDone: 5, BlocksFailed: 1, Bytes: 10 << 20, BytesDone: 5 << 20, BytesFailed: 1 << 20, Rate: 2 << 20, ETA: 2 * time.Second}
	line := progressLine(p)
	for _, want := range []string{" 50.0%", "5/10 blocks", "5.0 MiB/10.0 MiB", "1/4 files", "1 failed", "2.0 MiB/s", "ETA 2s"} {
		if !strings.Contains(line, want) {
			t.Errorf("progress line %q lacks %q", line, want)
		}
	}
	p.ETA = -1
	if line := progressLine(p); !strings.Contains(line, "ETA ?") {
		t.Errorf("unknown ETA: %q", line)
	}
	var out bytes.Buffer
	d := newProgressDisplay(&out, time.Hour)
	d.start()
	d.update(p)
	d.finish()
	if d.tty || !strings.HasPrefix(out.String(), "progress: ") || strings.Count(out.String(), "\n") != 1 {
		t.Errorf("display on a non-terminal: %q", out.String())
	}
	// On a terminal (of unknown width: 80 columns): a bar redrawn in place.
	out.Reset()
	tty := &progressDisplay{w: &out, tty: true, fd: -1, interval: time.Hour}
	tty.update(p)
	tty.draw(false)
	tty.draw(true)
	lines := strings.Split(out.String(), "\r\033[K")
	if len(lines) != 3 || !strings.HasPrefix(lines[1], "[") || len(lines[1]) > 79 || !strings.HasSuffix(lines[2], "\n") ||
		!strings.Contains(lines[1], strings.Repeat("=", 10)) {
		t.Errorf("display on a terminal: %q", out.String())
	}
}

func TestPrintResolution(t *testing.T) {
	plan := &prefetch.Plan{
		Resolved: []juice.PathResolution{
			{Path: "/models/m/latest", Resolved: "/models/m/v2", Symlinks: 1, Files: 3},
			{Path: "/models/other", Resolved: "/models/other", Files: 1},
		},
		SkippedLinks: 12,
	}
	for i := range 12 {
		plan.Skipped = append(plan.Skipped, juice.SkippedLink{Link: fmt.Sprintf("/models/m/v2/l%d", i), Target: "../v1/x", Reason: "leads out"})
	}
	var out bytes.Buffer
	printResolution(&out, plan)
	got := out.String()
	for _, want := range []string{"/models/m/latest -> /models/m/v2\n", "warning: 12 symlinks skipped", "  /models/m/v2/l9 -> ../v1/x: leads out\n", "  ... and 2 more\n"} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "/models/other") || strings.Contains(got, "/l10 ") {
		t.Errorf("output shows too much:\n%s", got)
	}
	out.Reset()
	printResolution(&out, &prefetch.Plan{Resolved: plan.Resolved[1:]})
	if out.Len() != 0 {
		t.Errorf("no symlinks: %q", out.String())
	}
}
