package blockkey

import (
	"errors"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		key  string
		want Key
		err  bool
	}{
		{key: "chunks/0/0/1_0_4194304", want: Key{SliceID: 1, Index: 0, Size: 4 << 20}},
		{key: "chunks/0/1/1234_3_1048576", want: Key{SliceID: 1234, Index: 3, Size: 1 << 20}},
		{key: "chunks/2/2345/2345678_0_100", want: Key{SliceID: 2345678, Size: 100}},
		{key: "chunks/D2/0/1234_0_4194304", want: Key{SliceID: 1234, Size: 4 << 20, HashPrefix: true}},
		{key: "chunks/01/0/1_7_5", want: Key{SliceID: 1, Index: 7, Size: 5, HashPrefix: true}},
		// 256 % 256 == 0 and 256/1e6 == 0: the hash-prefixed key "chunks/00/0/256_0_1".
		{key: "chunks/00/0/256_0_1", want: Key{SliceID: 256, Size: 1, HashPrefix: true}},
		{key: "chunks/0/0/256_0_1", want: Key{SliceID: 256, Size: 1}},
		{key: "chunks/d2/0/1234_0_4194304", err: true}, // lower-case hash prefix is not canonical
		{key: "chunks/0/0/1234_0_4194304", err: true},  // wrong directory for id 1234
		{key: "chunks/0/1/1234_0_0", err: true},
		{key: "chunks/0/1/1234_-1_10", err: true},
		{key: "chunks/0/1/1234_0_16777217", err: true},
		{key: "chunks/0/0/0_0_10", err: true},
		{key: "chunks/0/1/../1234_0_10", err: true},
		{key: "meta/dump.json.gz", err: true},
		{key: "juicefs_uuid", err: true},
		{key: "", err: true},
		{key: "chunks/0/1/1234_0_10/x", err: true},
		{key: "chunks/0/1/01234_0_10", err: true},
	}
	for _, tt := range tests {
		got, err := Parse(tt.key)
		if tt.err {
			if !errors.Is(err, ErrNotBlockKey) {
				t.Errorf("Parse(%q) = %+v, %v; want ErrNotBlockKey", tt.key, got, err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("Parse(%q) = %+v, %v; want %+v", tt.key, got, err, tt.want)
		}
		if got.String() != tt.key {
			t.Errorf("round trip of %q gave %q", tt.key, got.String())
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add("chunks/0/1/1234_3_1048576")
	f.Add("chunks/D2/0/1234_0_4194304")
	f.Fuzz(func(t *testing.T, key string) {
		b, err := Parse(key)
		if err == nil && b.String() != key {
			t.Fatalf("accepted non-canonical key %q (canonical %q)", key, b.String())
		}
	})
}
