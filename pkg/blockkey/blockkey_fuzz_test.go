package blockkey

import (
	"errors"
	"testing"
)

// FuzzStrict feeds arbitrary strings to Parse (beside
// FuzzParse, which checks canonical form only): it never
// panics, fails only with ErrNotBlockKey, and a key it accepts is in
// canonical form (String gives it back) with its fields in bounds.
func FuzzStrict(f *testing.F) {
	for _, s := range []string{
		"chunks/0/0/1_0_4194304", "chunks/0/1/1234_5_1048576", "chunks/D2/0/1234_0_4194304",
		"chunks/0/0/1_0_16777217", "chunks/0/0/0_0_1", "chunks/0/0/01_0_1", "chunks/../x",
		"chunks/0/0/1_-1_1", "chunks/0/0/18446744073709551615_9223372036854775807_16777216",
		"chunks/0/0/1_0_4194304/", "", "chunks//0/1_0_1", "chunks/0/0/1_0_+1",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, key string) {
		b, err := Parse(key)
		if err != nil {
			if !errors.Is(err, ErrNotBlockKey) {
				t.Fatalf("Parse(%q): %v, want ErrNotBlockKey", key, err)
			}
			return
		}
		if b.String() != key {
			t.Fatalf("Parse(%q) = %+v, which formats as %q", key, b, b.String())
		}
		if b.SliceID == 0 || b.Index < 0 || b.Size <= 0 || b.Size > maxBlockSize {
			t.Fatalf("Parse(%q) = %+v: field out of bounds", key, b)
		}
		if again, err := Parse(b.String()); err != nil || again != b {
			t.Fatalf("reparse of %q = %+v, %v; want %+v", key, again, err, b)
		}
	})
}
