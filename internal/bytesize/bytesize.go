// Package bytesize owns ringcache's one size syntax: it parses the byte
// counts of every size flag (cachenode serve --capacity, --min-free,
// --origin-bandwidth, cachenode warmup --bandwidth, the bench and demo
// commands) and formats the sizes of reports.
//
// A size is a non-negative number with an optional unit:
//
//	512                      bytes
//	40Ki 40Mi 40Gi 40Ti 40Pi powers of 1024, as Kubernetes quantities write them
//	40KiB 40MiB ... 40PiB    the same
//	40K 40M 40G 40T          the same (powers of 1024, ringcache's old short form)
//	40KB 40MB 40GB 40TB      powers of 1000
//
// so "40Mi" and "40MiB" are equal, and the "200Mi" of a Warmup's bandwidth
// means the same in a flag. Fractions ("1.5GiB") and a space before the
// unit are allowed; the result is truncated to whole bytes. Units are case
// sensitive.
//
// One difference with Kubernetes quantities remains, for compatibility:
// a bare M, G or T is a power of 1024 here but of 1000 in a quantity
// ("200M" is 200000000 bytes in a Warmup). Write Mi or MiB to mean the same
// in both.
package bytesize

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// ErrSyntax is returned (wrapped, with the input) for a string that is not
// a byte count; every error of Parse wraps it.
var ErrSyntax = errors.New("invalid byte count")

// ErrRange is returned (wrapped, with ErrSyntax) for a byte count larger
// than Max.
var ErrRange = errors.New("byte count too large")

// Max is the largest byte count Parse accepts: 4 EiB, half of the int64
// range, so that sums of a few sizes cannot overflow.
const Max = math.MaxInt64 / 2

// Accepted describes the accepted forms, for errors and flag help.
const Accepted = "a number of bytes with an optional unit, e.g. 512, 40Mi or 40MiB, 100Gi or 100GiB, 1.5GB " +
	"(Ki Mi Gi Ti Pi, KiB ... PiB and K M G T are powers of 1024; KB MB GB TB powers of 1000)"

// units are tried in order: a longer suffix before any suffix of it.
var units = []struct {
	suffix string
	mult   int64
}{
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40}, {"PiB", 1 << 50},
	{"Ki", 1 << 10}, {"Mi", 1 << 20}, {"Gi", 1 << 30}, {"Ti", 1 << 40}, {"Pi", 1 << 50},
	{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12},
	{"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}, {"T", 1 << 40},
	{"B", 1},
}

// Parse parses a byte count in the syntax of the package comment. Errors
// wrap ErrSyntax, name the input and the accepted forms; a count above Max
// also wraps ErrRange. Integers are read exactly; fractions as float64.
func Parse(s string) (int64, error) {
	t := strings.TrimSpace(s)
	var mult int64 = 1
	for _, u := range units {
		if strings.HasSuffix(t, u.suffix) {
			t, mult = strings.TrimSpace(strings.TrimSuffix(t, u.suffix)), u.mult
			break
		}
	}
	tooLarge := fmt.Errorf("%w: %q: %w (at most %d bytes, 4 EiB)", ErrSyntax, s, ErrRange, int64(Max))
	if n, err := strconv.ParseInt(t, 10, 64); err == nil || errors.Is(err, strconv.ErrRange) {
		switch {
		case err != nil && !strings.HasPrefix(t, "-"):
			return 0, tooLarge
		case err != nil || n < 0:
			return 0, fmt.Errorf("%w: %q is negative: want %s", ErrSyntax, s, Accepted)
		case n > Max/mult:
			return 0, tooLarge
		}
		return n * mult, nil
	}
	f, err := strconv.ParseFloat(t, 64)
	switch {
	case err != nil && errors.Is(err, strconv.ErrRange) && f > 0:
		return 0, tooLarge // beyond float64, +Inf
	case err != nil || math.IsNaN(f) || math.IsInf(f, 0):
		return 0, fmt.Errorf("%w: %q: want %s", ErrSyntax, s, Accepted)
	case f < 0:
		return 0, fmt.Errorf("%w: %q is negative: want %s", ErrSyntax, s, Accepted)
	case f*float64(mult) >= 1<<62: // Max+1, exactly a float64
		return 0, tooLarge
	}
	return int64(f * float64(mult)), nil
}

// Format renders n with a binary unit, e.g. "1.5 GiB"; Parse reads it
// back (to within the rounding of its one decimal).
func Format(n int64) string {
	const u = 1024
	if n < u {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(u), 0
	for m := n / u; m >= u && exp < 4; m /= u {
		div *= u
		exp++
	}
	// Tenths of the unit, rounded half up, in integers: near Max a float
	// cannot tell n from Max+1.
	q, r := n/div, n%div
	tenths := q*10 + r*10/div
	if r*10%div*2 >= div {
		tenths++
	}
	if tenths/10*div+tenths%10*div/10 > Max {
		// Rounded up past the largest count Parse accepts: round down,
		// so Parse reads it back.
		tenths--
	}
	return fmt.Sprintf("%d.%d %ciB", tenths/10, tenths%10, "KMGTP"[exp])
}

// Value is a flag.Value holding a byte count in the syntax of Parse.
type Value struct{ N *int64 }

func (v Value) String() string {
	if v.N == nil {
		return "0"
	}
	return strconv.FormatInt(*v.N, 10)
}

// Set implements flag.Value.
func (v Value) Set(s string) error {
	n, err := Parse(s)
	if err != nil {
		return err
	}
	*v.N = n
	return nil
}
