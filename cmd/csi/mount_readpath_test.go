package main

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ringcache/ringcache/pkg/juice"
)

func TestReadBudget(t *testing.T) {
	// JuiceFS v1.3.1's pauses for 10 retries: 1ms + 301ms + ... + 2701ms.
	if p := jfsRetryPauses(10); p != 13510*time.Millisecond {
		t.Errorf("pauses of 10 retries = %v, want 13.51s", p)
	}
	b, min := readBudget(30 * time.Second)
	// 30s - 13.51s pauses - 21 probes of 200ms - 1s margin.
	if b != 11290*time.Millisecond {
		t.Errorf("budget of a 30s read timeout = %v, want 11.29s", b)
	}
	if min != 23710*time.Millisecond {
		t.Errorf("least read timeout = %v, want 23.71s", min)
	}
	// The worst case of one read: the budget, the pauses and every probe.
	worst := b + jfsRetryPauses(jfsIORetries) + time.Duration(2*(jfsIORetries+1)-1)*probeTimeout
	if worst >= 30*time.Second {
		t.Errorf("worst case %v reaches the read timeout", worst)
	}
}

func TestSubdirError(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{fmt.Errorf("%q: %w", "/models/m/latest", juice.ErrSymlink), `--subdir /models/m/latest/x: "/models/m/latest": path goes through a symlink; mounts do not follow symlinks`},
		{fmt.Errorf("%q: %w", "/models/nope", juice.ErrPathNotFound), "does not exist in the volume"},
		{fmt.Errorf("%q: %w", "/models/f", juice.ErrNotDir), "is not a directory"},
	} {
		err := subdirError("/models/m/latest/x", tc.err)
		if !strings.Contains(err.Error(), tc.want) || !errors.Is(err, tc.err) {
			t.Errorf("subdirError(%v) = %v, want it to contain %q", tc.err, err, tc.want)
		}
	}
}
