package blockstore

import (
	"reflect"
	"strings"
	"testing"

	"github.com/ringcache/ringcache/pkg/clock"
	"github.com/ringcache/ringcache/pkg/clock/clocktest"
)

func TestOptionsValidate(t *testing.T) {
	tests := []struct {
		name     string
		o        Options
		wantErrs []string // substrings of the error; none for a valid o
	}{
		{name: "minimal", o: Options{Dir: "d", CapacityBytes: 1}},
		{name: "all set", o: Options{Dir: "d", CapacityBytes: 1 << 30, MinFreeBytes: 1 << 20, MaxBlockSize: 1 << 20}},
		{name: "missing Dir", o: Options{CapacityBytes: 1}, wantErrs: []string{"Dir"}},
		{name: "zero CapacityBytes", o: Options{Dir: "d"}, wantErrs: []string{"CapacityBytes"}},
		{name: "negative CapacityBytes", o: Options{Dir: "d", CapacityBytes: -1}, wantErrs: []string{"CapacityBytes", "-1"}},
		{name: "negative MinFreeBytes", o: Options{Dir: "d", CapacityBytes: 1, MinFreeBytes: -1}, wantErrs: []string{"MinFreeBytes"}},
		{name: "negative MaxBlockSize", o: Options{Dir: "d", CapacityBytes: 1, MaxBlockSize: -1}, wantErrs: []string{"MaxBlockSize"}},
		{name: "several", o: Options{MinFreeBytes: -1}, wantErrs: []string{"Dir", "CapacityBytes", "MinFreeBytes"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, defaults := range []bool{false, true} {
				o := tt.o
				if defaults {
					o.EnsureDefaults()
				}
				before := o
				err := o.Validate()
				if !reflect.DeepEqual(o, before) {
					t.Errorf("Validate changed the options: %+v, was %+v", o, before)
				}
				if len(tt.wantErrs) == 0 {
					if err != nil {
						t.Fatalf("Validate (defaults %v): %v", defaults, err)
					}
					continue
				}
				if err == nil {
					t.Fatalf("Validate (defaults %v) succeeded", defaults)
				}
				if !strings.HasPrefix(err.Error(), "blockstore: invalid options: ") {
					t.Errorf("error %q lacks the package prefix", err)
				}
				for _, want := range tt.wantErrs {
					if !strings.Contains(err.Error(), want) {
						t.Errorf("error %q does not mention %q", err, want)
					}
				}
				if strings.Contains(err.Error(), "\n") && len(tt.wantErrs) == 1 {
					t.Errorf("error %q reports more than one problem", err)
				}
			}
		})
	}
}

func TestOptionsEnsureDefaults(t *testing.T) {
	var o Options
	o.EnsureDefaults()
	if o.MaxBlockSize != DefaultMaxBlockSize || o.Logger == nil || o.FS != (OSFS{}) || o.Clock != clock.Real() {
		t.Errorf("defaults not filled: %+v", o)
	}
	if o.Dir != "" || o.CapacityBytes != 0 || o.MinFreeBytes != 0 {
		t.Errorf("EnsureDefaults set a field without a default: %+v", o)
	}
	again := o
	again.EnsureDefaults()
	if !reflect.DeepEqual(again, o) {
		t.Errorf("EnsureDefaults is not idempotent: %+v, then %+v", o, again)
	}
	// Set fields stay as they are.
	clk := clocktest.New(o.Clock.Now())
	set := Options{Dir: "d", CapacityBytes: 5, MinFreeBytes: 7, MaxBlockSize: 3, Logger: o.Logger, FS: OSFS{}, Clock: clk}
	want := set
	set.EnsureDefaults()
	if !reflect.DeepEqual(set, want) {
		t.Errorf("EnsureDefaults changed set fields: %+v, want %+v", set, want)
	}
}
