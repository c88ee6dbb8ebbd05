package controller

import (
	"context"
	"strings"
	"testing"

	"github.com/ringcache/ringcache/pkg/prefetch"
)

// nopWarmer is a Warmer that is never called.
type nopWarmer struct{}

func (nopWarmer) Warm(context.Context, Request, func(prefetch.Progress)) (*Outcome, error) {
	panic("nopWarmer: Warm called")
}

func TestOptions(t *testing.T) {
	if _, err := New(Options{}); err == nil || !strings.Contains(err.Error(), "controller: invalid options: a warmer is required") {
		t.Errorf("New without a warmer: %v", err)
	}
	// Validate only checks; a negative interval means the default, as zero.
	o := Options{Warmer: nopWarmer{}, StatusInterval: -1}
	if err := o.Validate(); err == nil || !strings.Contains(err.Error(), "a clock is required") || !strings.Contains(err.Error(), "status interval") {
		t.Errorf("Validate before EnsureDefaults: %v", err)
	}
	if o.Clock != nil || o.StatusInterval != -1 {
		t.Errorf("Validate modified the options: %+v", o)
	}
	o.EnsureDefaults()
	if err := o.Validate(); err != nil || o.Clock == nil || o.StatusInterval != DefaultStatusInterval {
		t.Errorf("after EnsureDefaults: %+v, %v", o, err)
	}
}
