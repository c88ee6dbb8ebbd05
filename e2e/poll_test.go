package e2e

import (
	"testing"
	"time"
)

// pollInterval is how often pollUntil asks again.
const pollInterval = 50 * time.Millisecond

// pollUntil retries f until it returns nil and returns how long that took;
// once timeout has passed it fails the test with what and f's last error.
// It is the one way these tests wait for another process (a mount, a
// plugin, a cache node, the kernel's mount table) to reach a state: f
// observes that process, and the deadline bounds the wait.
func pollUntil(t *testing.T, what string, timeout time.Duration, f func() error) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		err := f()
		if err == nil {
			return time.Since(start)
		}
		if time.Since(start) > timeout {
			t.Fatalf("%s: still failing after %v: %v", what, timeout, err)
		}
		time.Sleep(pollInterval) // polls f's process with a deadline
	}
}
