package cache

// SlotWaiters returns the fetches of c waiting for an origin slot, reads
// and warms.
func SlotWaiters(c *Cache) (reads, warms int) { return c.slots.waiters() }

// SlotsHeld returns c's free origin slots and those warm fetches hold.
func SlotsHeld(c *Cache) (free, warm int) {
	c.slots.mu.Lock()
	defer c.slots.mu.Unlock()
	return c.slots.free, c.slots.warm
}

// SlotsChanged returns a channel closed the next time c's origin slots or
// their queues change. Get it before checking SlotWaiters or SlotsHeld.
func SlotsChanged(c *Cache) <-chan struct{} { return c.slots.changes() }

// NewOriginLog is newOriginLog: the "origin fetch failed" log of o.
var NewOriginLog = newOriginLog
