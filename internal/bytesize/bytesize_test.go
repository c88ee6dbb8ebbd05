package bytesize

import (
	"errors"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		err  bool
	}{
		{"512", 512, false},
		{"4MiB", 4 << 20, false},
		{"4M", 4 << 20, false},
		{"100GiB", 100 << 30, false},
		{"1.5GB", 1500000000, false},
		{" 2 KiB ", 2048, false},
		{"0", 0, false},
		{"-1", 0, true},
		{"", 0, true},
		{"ten", 0, true},
		{"1e40", 0, true},
		{"NaN", 0, true},
	}
	for _, tt := range tests {
		got, err := Parse(tt.in)
		if tt.err != (err != nil) || got != tt.want {
			t.Errorf("Parse(%q) = %d, %v; want %d, err=%v", tt.in, got, err, tt.want, tt.err)
		}
		if err != nil && !errors.Is(err, ErrSyntax) {
			t.Errorf("Parse(%q) error %v is not ErrSyntax", tt.in, err)
		}
	}
}

func TestFormat(t *testing.T) {
	for n, want := range map[int64]string{0: "0 B", 1023: "1023 B", 1536: "1.5 KiB", 4 << 20: "4.0 MiB", 3 << 30: "3.0 GiB"} {
		if got := Format(n); got != want {
			t.Errorf("Format(%d) = %q, want %q", n, got, want)
		}
	}
}
