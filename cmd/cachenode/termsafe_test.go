package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/ringcache/ringcache/pkg/juice"
	"github.com/ringcache/ringcache/pkg/prefetch"
)

// TestPrintResolutionEscapesVolumeNames: names, targets and reasons come
// from the volume; escape sequences and other control bytes in them never
// reach the operator's terminal raw.
func TestPrintResolutionEscapesVolumeNames(t *testing.T) {
	const esc = "\x1b]0;owned\x07\x1b[2J\r\u009b\x9b"
	plan := &prefetch.Plan{
		Resolved: []juice.PathResolution{
			{Path: "/m/latest" + esc, Resolved: "/m/v2" + esc, Symlinks: 1, Files: 1},
		},
		SkippedLinks: 1,
		Skipped:      []juice.SkippedLink{{Link: "/m/l" + esc, Target: "t" + esc, Reason: "leads to \"/x" + esc + "\""}},
	}
	var out bytes.Buffer
	printResolution(&out, plan)
	got := out.String()
	for _, c := range got {
		if c != '\n' && (c < 0x20 || c == 0x7f || (c >= 0x80 && c < 0xa0) || c == 0xfffd) {
			t.Fatalf("output holds control character %U:\n%q", c, got)
		}
	}
	for _, want := range []string{`/m/latest\x1b]0;owned\a\x1b[2J\r\u009b\x9b -> /m/v2\x1b]0;owned`, `  /m/l\x1b]0;owned`, `-> t\x1b`, `: leads to "/x\x1b]0;owned`} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
	if s := termSafe("/models/m/v2 ünïcode"); s != "/models/m/v2 ünïcode" {
		t.Errorf("printable names changed: %q", s)
	}
	if s := termSafe("a\xffb"); s != `a\xffb` {
		t.Errorf("invalid UTF-8: %q", s)
	}
}
