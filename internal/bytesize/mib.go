package bytesize

import (
	"fmt"
	"strconv"
)

// MiB is one mebibyte, the unit JuiceFS's size flags count in.
const MiB = 1 << 20

// MiBValue is a flag.Value for a size JuiceFS takes in MiB (its
// --cache-size, --buffer-size): a bare number is MiB, as JuiceFS reads it,
// and any other form of Parse must be a whole number of MiB (40Mi, 40MiB,
// 10Gi). N holds the MiB count.
type MiBValue struct{ N *int }

func (v MiBValue) String() string {
	if v.N == nil {
		return "0"
	}
	return strconv.Itoa(*v.N)
}

// Set implements flag.Value.
func (v MiBValue) Set(s string) error {
	n, err := ParseMiB(s)
	if err != nil {
		return err
	}
	*v.N = n
	return nil
}

// ParseMiB parses s as MiBValue does and returns the MiB count.
func ParseMiB(s string) (int, error) {
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		if n < 0 {
			return 0, fmt.Errorf("%w: %q: a size is not negative", ErrSyntax, s)
		}
		if n > Max/MiB {
			return 0, fmt.Errorf("%w: %q MiB", ErrRange, s)
		}
		return int(n), nil
	}
	b, err := Parse(s)
	if err != nil {
		return 0, fmt.Errorf("%w (a bare number is MiB)", err)
	}
	if b%MiB != 0 {
		return 0, fmt.Errorf("%w: %q is not a whole number of MiB", ErrSyntax, s)
	}
	return int(b / MiB), nil
}
