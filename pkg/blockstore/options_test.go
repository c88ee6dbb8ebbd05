package blockstore

import (
	"strings"
	"testing"
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
			o := tt.o
			err := o.Validate()
			if len(tt.wantErrs) > 0 {
				if err == nil {
					t.Fatal("Validate succeeded")
				}
				for _, want := range tt.wantErrs {
					if !strings.Contains(err.Error(), want) {
						t.Errorf("error %q does not mention %q", err, want)
					}
				}
				if strings.Contains(err.Error(), "\n") && len(tt.wantErrs) == 1 {
					t.Errorf("error %q reports more than one problem", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Validate: %v", err)
			}
			if o.Logger == nil || o.FS == nil || o.Now == nil {
				t.Errorf("defaults not filled: %+v", o)
			}
			wantMax := tt.o.MaxBlockSize
			if wantMax == 0 {
				wantMax = DefaultMaxBlockSize
			}
			if o.MaxBlockSize != wantMax || o.Dir != tt.o.Dir || o.CapacityBytes != tt.o.CapacityBytes || o.MinFreeBytes != tt.o.MinFreeBytes {
				t.Errorf("Validate changed set fields or defaulted wrongly: %+v", o)
			}
		})
	}
}
