package main

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"testing"
)

// TestWarnLooseKeyFile: a gossip key file that group or others may read
// is warned about at start, naming the file and its mode, never the key;
// a file only its owner reads is not.
func TestWarnLooseKeyFile(t *testing.T) {
	dir := t.TempDir()
	for _, tt := range []struct {
		mode os.FileMode
		warn bool
	}{{0o600, false}, {0o400, false}, {0o640, true}, {0o644, true}, {0o604, true}} {
		p := writeFile(t, dir, "gossip-key", testGossipKeyB64+"\n")
		if err := os.Chmod(p, tt.mode); err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		warnLooseKeyFile(slog.New(slog.NewTextHandler(&buf, nil)), p)
		out := buf.String()
		if got := strings.Contains(out, "level=WARN"); got != tt.warn {
			t.Errorf("mode %#o: warned %v, want %v: %q", tt.mode, got, tt.warn, out)
		}
		if tt.warn && (!strings.Contains(out, p) || !strings.Contains(out, fmt.Sprintf("mode=%#o", tt.mode))) {
			t.Errorf("mode %#o: warning does not name the file and mode: %q", tt.mode, out)
		}
		if strings.Contains(out, testGossipKeyB64[:12]) {
			t.Errorf("mode %#o: warning shows the key: %q", tt.mode, out)
		}
		if err := os.Remove(p); err != nil {
			t.Fatal(err)
		}
	}
}
