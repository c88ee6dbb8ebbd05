package ring

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"log"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ringcache/ringcache/pkg/clock/clocktest"
)

// waitRefused waits until m has refused at least n gossip messages for
// reason: the event that shows a rogue tried (it waits on the refusal
// log's change channel, with a deadline).
func waitRefused(t *testing.T, m *Membership, reason Refusal, n uint64, timeout time.Duration) {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		changed := m.refusals.changed()
		if m.Refused(reason) >= n {
			return
		}
		select {
		case <-changed:
		case <-deadline.C:
			t.Fatalf("%s: refused %d gossip messages for %q within %v, want %d", m.self.ID, m.Refused(reason), reason, timeout, n)
		}
	}
}

// TestMembershipRefusesWrongKey: members with another key, with no key, or
// holding the ring's key only as a secondary one (so they encrypt with
// another) cannot join, however much weight they claim: they own no
// partition in any real member's view, and the refusals are counted. A
// member with the key joins.
func TestMembershipRefusesWrongKey(t *testing.T) {
	logger, logs := newTestLog(t)
	a := startNode(t, "node-a", withKey(testKey), withLogger(logger))
	seeds := withSeeds(a.GossipAddr())
	heavy := func(o *Options) { o.Self.Weight = MaxWeight; o.Self.Addr = "127.0.0.1:1" }
	fast := withRejoin(50 * time.Millisecond)
	rogues := []*Membership{
		startNode(t, "rogue-other-key", withKey(bytes.Repeat([]byte{7}, 32)), seeds, heavy, fast),
		startNode(t, "rogue-no-key", seeds, heavy, fast),
		startNode(t, "rogue-secondary", func(o *Options) { o.SecretKeys = [][]byte{bytes.Repeat([]byte{9}, 32), testKey} }, seeds, heavy, fast),
	}
	good := startNode(t, "node-d", withKey(testKey), seeds)
	for _, m := range []*Membership{a, good} {
		waitView(t, m, 10*time.Second, "node-d joined", hasIDs("node-a", "node-d"))
	}
	// Each rogue retries every 50 ms; wait until node-a has refused many
	// attempts of both kinds, then look at every view.
	waitRefused(t, a, RefusedKey, 10, 20*time.Second)
	waitRefused(t, a, RefusedUnencrypted, 5, 20*time.Second)

	for _, m := range []*Membership{a, good} {
		v := m.View()
		if got := memberIDs(v); !slices.Equal(got, []string{"node-a", "node-d"}) {
			t.Errorf("%s: members %v, want node-a, node-d", m.self.ID, got)
		}
		shares := v.Placement.Shares()
		for _, r := range rogues {
			if s := shares[r.self.ID]; s != 0 {
				t.Errorf("%s: rogue %s owns %.1f%% of the partitions", m.self.ID, r.self.ID, 100*s)
			}
		}
		for _, k := range convergeKeys {
			for _, o := range v.Placement.Owners(k, 3) {
				if strings.HasPrefix(o.ID, "rogue") {
					t.Fatalf("%s: key %s owned by %s", m.self.ID, k, o.ID)
				}
			}
		}
		if n := m.ml.NumMembers(); n != 2 {
			t.Errorf("%s: %d gossip members, want 2", m.self.ID, n)
		}
	}
	for _, r := range rogues {
		if got := memberIDs(r.View()); len(got) != 1 {
			t.Errorf("%s: members %v, want only itself", r.self.ID, got)
		}
	}
	// Logged as refusals, rate-limited: far fewer lines than refusals.
	if !logs.contains("WARN gossip refused", "reason=key", "from=127.0.0.1:") {
		t.Error("no \"gossip refused\" log record with the reason and the sender's address")
	}
	if n := logs.count("gossip refused"); n == 0 || uint64(n) >= a.Refused(RefusedKey) {
		t.Errorf("%d \"gossip refused\" records for %d refusals: not rate-limited", n, a.Refused(RefusedKey))
	}
	if logs.contains("Decrypt packet failed") || logs.contains("ERROR failed to receive") {
		t.Error("memberlist's own line for a refusal was logged too")
	}
}

// TestMembershipKeyRotation: the steps of a key rotation (docs/operations.md)
// each keep the ring whole. Nodes whose key files are one step apart join
// each other; nodes with only the old and only the new key do not.
func TestMembershipKeyRotation(t *testing.T) {
	k1, k2 := bytes.Repeat([]byte{1}, 32), bytes.Repeat([]byte{2}, 32)
	keys := func(ks ...[]byte) nodeOpt { return func(o *Options) { o.SecretKeys = ks } }
	for _, step := range []struct {
		name     string
		old, new [][]byte
	}{
		{"add the new key as secondary", [][]byte{k1}, [][]byte{k1, k2}},
		{"make the new key primary", [][]byte{k1, k2}, [][]byte{k2, k1}},
		{"drop the old key", [][]byte{k2, k1}, [][]byte{k2}},
	} {
		t.Run(step.name, func(t *testing.T) {
			a := startNode(t, "node-a", keys(step.old...))
			b := startNode(t, "node-b", keys(step.new...), withSeeds(a.GossipAddr()))
			for _, m := range []*Membership{a, b} {
				waitView(t, m, 10*time.Second, "converged", hasIDs("node-a", "node-b"))
			}
		})
	}
	t.Run("old key only and new key only", func(t *testing.T) {
		a := startNode(t, "node-a", keys(k1))
		b := startNode(t, "node-b", keys(k2), withSeeds(a.GossipAddr()), withRejoin(50*time.Millisecond))
		waitRefused(t, a, RefusedKey, 3, 20*time.Second)
		for _, m := range []*Membership{a, b} {
			if got := memberIDs(m.View()); len(got) != 1 {
				t.Errorf("%s: members %v, want only itself", m.self.ID, got)
			}
		}
	})
}

// TestClassifyRefusal pins the memberlist v0.7.0 lines that report refused
// gossip, and a few that do not.
func TestClassifyRefusal(t *testing.T) {
	for _, tt := range []struct {
		line string
		want int
	}{
		{"Decrypt packet failed: no installed keys could decrypt the message from=10.0.0.9:7946", 0},
		{"Decrypt packet failed: unsupported encryption version 77 from=10.0.0.9:7946", 0},
		{"failed to receive: no installed keys could decrypt the message from=10.0.0.9:41234", 0},
		{"failed to receive: payload is too small to decrypt: 3 from=10.0.0.9:41234", 0},
		{"failed to receive: remote state is encrypted and encryption is not configured from=10.0.0.9:41234", 0},
		{"failed to receive: encryption is configured but remote state is not encrypted from=10.0.0.9:41234", 1},
		{"discarding stream with unacceptable label \"x\": from=10.0.0.9:41234", 2},
		{"discarding packet with unacceptable label \"x\": from=10.0.0.9:7946", 2},
		{"failed to receive and remove the stream label header: bad from=10.0.0.9:41234", 2},
		{"failed to receive: remote node state is larger than limit (99999999) from=10.0.0.9:41234", 3},
		{"failed to receive: ringcache: gossip stream larger than 4194304 bytes from=10.0.0.9:41234", iOversized},
		{"failed to receive: read tcp 10.0.0.1:7946->10.0.0.9:41234: i/o timeout from=10.0.0.9:41234", iMalformed},
		{"Failed to send error: broken pipe from=10.0.0.9:41234", iFollowUp},
		{"Failed to send error: write tcp 10.0.0.1:7946->10.0.0.9:41234: i/o timeout from=10.0.0.9:41234", iFollowUp},
		{"Refuting a suspect message (from: node-b)", -1},
		{"Stream connection from=10.0.0.9:41234", -1},
	} {
		if got := classifyRefusal([]byte(tt.line)); got != tt.want {
			t.Errorf("%q: class %d, want %d", tt.line, got, tt.want)
		}
	}
}

// TestRefusalLogRateLimit: one record per reason per interval, carrying the
// number left out.
func TestRefusalLogRateLimit(t *testing.T) {
	logger, logs := newTestLog(t)
	clk := clocktest.New(time.Unix(1000, 0))
	r := newRefusals(clk)
	w := log.New(slogWriter{log: logger, refusals: r}, "", 0)
	for range 100 {
		w.Printf("[ERR] memberlist: Decrypt packet failed: no installed keys could decrypt the message from=10.0.0.9:7946")
	}
	w.Printf("[ERR] memberlist: failed to receive: encryption is configured but remote state is not encrypted from=10.0.0.9:1")
	// The follow-up of a refused stream: neither counted nor logged (one
	// per flooding connection would bypass the limit).
	for range 50 {
		w.Printf("[ERR] memberlist: Failed to send error: write tcp 127.0.0.1:7946->127.0.0.1:4000: i/o timeout from=127.0.0.1:4000")
	}
	if logs.contains("Failed to send error") {
		t.Error("\"Failed to send error\" logged above debug level")
	}
	clk.Advance(refusalLogEvery)
	w.Printf("[ERR] memberlist: Decrypt packet failed: no installed keys could decrypt the message from=10.0.0.9:7946")
	if got := r.count(RefusedKey); got != 101 {
		t.Errorf("counted %d key refusals, want 101", got)
	}
	if got := r.count(RefusedUnencrypted); got != 1 {
		t.Errorf("counted %d unencrypted refusals, want 1", got)
	}
	for _, x := range Refusals[iLabel:] {
		if got := r.count(x); got != 0 {
			t.Errorf("counted %d %s refusals, want 0", got, x)
		}
	}
	if n := logs.count("gossip refused"); n != 3 {
		t.Errorf("%d records, want 3 (two key, one unencrypted)", n)
	}
	if !logs.contains("reason=key", "suppressed_since_last=99") {
		t.Error("the second key record does not say 99 were left out")
	}
}

// TestParseKeyFile: the key file format, and errors that never show key
// material.
func TestParseKeyFile(t *testing.T) {
	k1, k2 := testFileKey(1), testFileKey(2)
	b1, b2 := base64.StdEncoding.EncodeToString(k1), base64.StdEncoding.EncodeToString(k2)
	got, err := ParseKeyFile([]byte("# rotation: new key first\n" + b2 + "\r\n\n  " + b1 + "  \n"))
	if err != nil || len(got) != 2 || !bytes.Equal(got[0], k2) || !bytes.Equal(got[1], k1) {
		t.Fatalf("ParseKeyFile = %x, %v", got, err)
	}
	short := base64.StdEncoding.EncodeToString(k1[:16])
	unpadded := base64.RawStdEncoding.EncodeToString(append(k1, 5)) // 44 characters, 33 bytes
	for _, tt := range []struct{ name, file, msg string }{
		{"empty", "", "no key"},
		{"comments only", "# nothing\n\n", "no key"},
		{"16-byte key", short, "line 1 is 24 characters, want 44"},
		{"raw bytes", string(bytes.Repeat([]byte{0xfe}, KeySize)), "line 1 is 32 characters, want 44"},
		{"33 bytes unpadded", unpadded, "not the standard base64 of 32 bytes"},
		{"url alphabet", "-_" + b2[2:], "not the standard base64"},
		{"repeated", b1 + "\n" + b1, "line 2 repeats a key"},
		{"too many", manyKeys(MaxKeys + 1), "more than 4 keys"},
		{"huge", strings.Repeat("#", maxKeyFileSize+1), "larger than 4096 bytes"},
		{"zero bytes", b1 + "\n" + base64.StdEncoding.EncodeToString(make([]byte, KeySize)), "line 2 is one byte repeated"},
		{"one byte repeated", base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{0xfe}, KeySize)), "line 1 is one byte repeated"},
		{"ascii ones", base64.StdEncoding.EncodeToString(bytes.Repeat([]byte("1"), KeySize)), "line 1 is one byte repeated"},
		{"typed password", "\n" + base64.StdEncoding.EncodeToString([]byte("correct horse battery staple 12!")), "line 2 decodes to printable text"},
	} {
		_, err := ParseKeyFile([]byte(tt.file))
		if !errors.Is(err, ErrBadKeyFile) || !strings.Contains(err.Error(), tt.msg) {
			t.Errorf("%s: error %v, want ErrBadKeyFile with %q", tt.name, err, tt.msg)
		}
		if err != nil && (strings.Contains(err.Error(), b1[:20]) || strings.Contains(err.Error(), short[:20])) {
			t.Errorf("%s: error shows key material: %v", tt.name, err)
		}
	}
}

// FuzzParseKeyFile: any content either parses into 1..MaxKeys distinct
// KeySize-byte keys that re-encode to lines of the input, or fails with
// ErrBadKeyFile; never a panic.
func FuzzParseKeyFile(f *testing.F) {
	k := base64.StdEncoding.EncodeToString(testFileKey(3))
	for _, s := range []string{"", k, k + "\n", "# c\n" + k + "\n" + base64.StdEncoding.EncodeToString(testFileKey(4)),
		base64.StdEncoding.EncodeToString(make([]byte, 32)), base64.StdEncoding.EncodeToString(bytes.Repeat([]byte("1"), 32)),
		base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef")),
		base64.RawStdEncoding.EncodeToString(bytes.Repeat([]byte{5}, 33)), "====", strings.Repeat("A", 44), k + "\n" + k} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		keys, err := ParseKeyFile(b)
		if err != nil {
			if !errors.Is(err, ErrBadKeyFile) {
				t.Fatalf("error %v does not wrap ErrBadKeyFile", err)
			}
			return
		}
		if len(keys) == 0 || len(keys) > MaxKeys {
			t.Fatalf("%d keys", len(keys))
		}
		for i, key := range keys {
			if len(key) != KeySize || cap(key) != KeySize {
				t.Fatalf("key %d: len %d cap %d", i, len(key), cap(key))
			}
			if weakKey(key) != "" {
				t.Fatalf("key %d is weak: %s", i, weakKey(key))
			}
			if !bytes.Contains(b, []byte(base64.StdEncoding.EncodeToString(key))) {
				t.Fatalf("key %d is not in the input", i)
			}
			for _, prev := range keys[:i] {
				if bytes.Equal(prev, key) {
					t.Fatal("repeated key")
				}
			}
		}
	})
}

// count is the number of records containing sub.
func (h *testLog) count(sub string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, r := range *h.recs {
		if strings.Contains(r, sub) {
			n++
		}
	}
	return n
}

// testFileKey is a fixed key that looks random: a key file accepts it.
func testFileKey(i int) []byte {
	k := sha256.Sum256([]byte{'k', 'e', 'y', byte(i)})
	return k[:]
}

// manyKeys is a key file of n distinct keys.
func manyKeys(n int) string {
	var b strings.Builder
	for i := range n {
		b.WriteString(base64.StdEncoding.EncodeToString(testFileKey(i+1)) + "\n")
	}
	return b.String()
}
