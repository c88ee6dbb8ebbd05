package bytesize

import (
	"errors"
	"testing"
)

func TestParseMiB(t *testing.T) {
	for in, want := range map[string]int{"0": 0, "1024": 1024, "1Gi": 1024, "1GiB": 1024, "40Mi": 40, "40MiB": 40, "1048576B": 1} {
		got, err := ParseMiB(in)
		if err != nil || got != want {
			t.Errorf("ParseMiB(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for in, want := range map[string]error{"-1": ErrSyntax, "1.5Mi": ErrSyntax, "100KiB": ErrSyntax, "9223372036854775807": ErrRange, "lots": ErrSyntax, "": ErrSyntax} {
		if _, err := ParseMiB(in); !errors.Is(err, want) {
			t.Errorf("ParseMiB(%q): %v, want %v", in, err, want)
		}
	}
}
