package bytesize

import (
	"errors"
	"flag"
	"math"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		in   string
		want int64
	}{
		{"512", 512},
		{"0", 0},
		{"4MiB", 4 << 20},
		{"4M", 4 << 20},
		{"100GiB", 100 << 30},
		{"1.5GB", 1500000000},
		{" 2 KiB ", 2048},
		{"1.5 GiB", 3 << 29},
		{"7B", 7},
		{"2TB", 2e12},
		{"1PiB", 1 << 50},
		{"1e3", 1000},
		{"+5Ki", 5 << 10},
		{"0.5Ki", 512},
		{"4000PiB", 4000 << 50},
	}
	for _, tt := range tests {
		got, err := Parse(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("Parse(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
		}
	}
}

// TestBinaryFormsEqual: a Kubernetes quantity's binary suffix ("40Mi", as a
// Warmup's bandwidth is written) and the IEC one ("40MiB") are the same
// count, and so is the old short form ("40M").
func TestBinaryFormsEqual(t *testing.T) {
	for _, tt := range []struct {
		forms []string
		want  int64
	}{
		{[]string{"40Ki", "40KiB", "40K"}, 40 << 10},
		{[]string{"40Mi", "40MiB", "40M", "40 Mi", "40 MiB"}, 40 << 20},
		{[]string{"200Mi", "200MiB"}, 200 << 20},
		{[]string{"1.5Gi", "1.5GiB", "1.5G", "1536Mi"}, 3 << 29},
		{[]string{"3Ti", "3TiB", "3T"}, 3 << 40},
		{[]string{"2Pi", "2PiB"}, 2 << 50},
	} {
		for _, f := range tt.forms {
			if got, err := Parse(f); err != nil || got != tt.want {
				t.Errorf("Parse(%q) = %d, %v; want %d", f, got, err, tt.want)
			}
		}
	}
}

func TestParseRefuses(t *testing.T) {
	for _, tt := range []struct {
		in    string
		rng   bool   // ErrRange too
		extra string // more the message must say
	}{
		{in: "-1", extra: "negative"},
		{in: "-1.5", extra: "negative"},
		{in: "-99999999999999999999", extra: "negative"},
		{in: "-4Mi", extra: "negative"},
		{in: ""},
		{in: "ten"},
		{in: "lots"},
		{in: "NaN"},
		{in: "Inf"},
		{in: "-Inf"},
		{in: "Mi"},
		{in: "40mi"},  // units are case sensitive
		{in: "40MIB"}, // idem
		{in: "40iB"},
		{in: "40Mib"},
		{in: "40MiBB"},
		{in: "40 M i"},
		{in: "4k"}, // not a unit here (a decimal kilo in a quantity)
		{in: "0x10"},
		{in: "1e40", rng: true},
		{in: "1e400", rng: true},
		{in: "9223372036854775807", rng: true},
		{in: "4611686018427387904", rng: true}, // Max+1
		{in: "99999999999999999999", rng: true},
		{in: "4611686018427387904.0", rng: true},
		{in: "4194304TiB", rng: true},
		{in: "8EiB"}, // no exbi unit
		{in: "4096PiB", rng: true},
		{in: "5000000TB", rng: true},
	} {
		got, err := Parse(tt.in)
		if err == nil {
			t.Errorf("Parse(%q) = %d, want an error", tt.in, got)
			continue
		}
		msg := err.Error()
		if !errors.Is(err, ErrSyntax) || errors.Is(err, ErrRange) != tt.rng {
			t.Errorf("Parse(%q): %v: ErrSyntax %v, ErrRange %v (want %v)", tt.in, err, errors.Is(err, ErrSyntax), errors.Is(err, ErrRange), tt.rng)
		}
		if !strings.Contains(msg, "invalid byte count") || !strings.Contains(msg, `"`+tt.in+`"`) {
			t.Errorf("Parse(%q): %q does not name the input", tt.in, msg)
		}
		// A syntax error names the accepted forms; a range error the limit.
		if want := "40Mi or 40MiB"; !tt.rng && !strings.Contains(msg, want) {
			t.Errorf("Parse(%q): %q does not name the accepted forms (%q)", tt.in, msg, want)
		}
		if want := "at most 4611686018427387903 bytes"; tt.rng && !strings.Contains(msg, want) {
			t.Errorf("Parse(%q): %q does not name the limit", tt.in, msg)
		}
		if !strings.Contains(msg, tt.extra) {
			t.Errorf("Parse(%q): %q does not say %q", tt.in, msg, tt.extra)
		}
	}
}

func TestParseMax(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want int64
	}{
		{"4611686018427387903", Max},
		{"4095PiB", 4095 << 50},
		{"4194303TiB", 4194303 << 40},
		{"4095.5PiB", 8191 << 49},
	} {
		if got, err := Parse(tt.in); err != nil || got != tt.want {
			t.Errorf("Parse(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
		}
	}
}

func TestFormat(t *testing.T) {
	for n, want := range map[int64]string{0: "0 B", 1023: "1023 B", 1536: "1.5 KiB", 4 << 20: "4.0 MiB", 3 << 30: "3.0 GiB", 5 << 50: "5.0 PiB"} {
		if got := Format(n); got != want {
			t.Errorf("Format(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestValue(t *testing.T) {
	var n int64
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	fs.SetOutput(new(strings.Builder))
	fs.Var(Value{N: &n}, "bandwidth", "bytes/s")
	if err := fs.Parse([]string{"--bandwidth", "40Mi"}); err != nil || n != 40<<20 {
		t.Errorf("--bandwidth 40Mi: %d, %v", n, err)
	}
	if err := fs.Parse([]string{"--bandwidth", "40MiB"}); err != nil || n != 40<<20 {
		t.Errorf("--bandwidth 40MiB: %d, %v", n, err)
	}
	if err := fs.Parse([]string{"--bandwidth", "40Mx"}); err == nil || !strings.Contains(err.Error(), "40Mi or 40MiB") {
		t.Errorf("--bandwidth 40Mx: %v", err)
	}
	if s := (Value{}).String(); s != "0" {
		t.Errorf("zero Value: %q", s)
	}
}

// FuzzParse: Parse never panics, accepts only counts in [0, Max], refuses
// with ErrSyntax, reads the Ki/KiB forms alike, and reads Format back.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"512", "40Mi", "40MiB", "1.5GB", " 2 KiB ", "-1", "1e40", "NaN", "4k", "0x1p10", "1e-400"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := Parse(s)
		if err != nil {
			if !errors.Is(err, ErrSyntax) || n != 0 {
				t.Fatalf("Parse(%q) = %d, %v: want 0 and ErrSyntax", s, n, err)
			}
			return
		}
		if n < 0 || n > Max {
			t.Fatalf("Parse(%q) = %d, outside [0, Max]", s, n)
		}
		for _, bin := range []string{"Ki", "Mi", "Gi", "Ti", "Pi"} {
			if strings.HasSuffix(s, bin) {
				m, err := Parse(s + "B")
				if err != nil || m != n {
					t.Fatalf("Parse(%q) = %d but Parse(%q) = %d, %v", s, n, s+"B", m, err)
				}
			}
		}
		back, err := Parse(Format(n))
		if err != nil || math.Abs(float64(back-n)) > 0.051*float64(n)+1 {
			t.Fatalf("Parse(Format(%d) = %q) = %d, %v", n, Format(n), back, err)
		}
	})
}
