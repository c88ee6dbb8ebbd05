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
