package cache

import (
	"context"
	"sync"
)

// flightGroup runs one fetch per key however many callers ask for it at
// once. Unlike x/sync/singleflight, a caller that gives up (its context is
// done) leaves the fetch running for the others, and the fetch itself runs
// under its own context, not the first caller's.
type flightGroup struct {
	mu    sync.Mutex
	calls map[string]*flight
}

type flight struct {
	done chan struct{}
	val  fetched
	err  error
}

// do returns the result of fn for key, starting fn only if no call for key
// is in flight. shared reports whether this caller joined a running call.
func (g *flightGroup) do(ctx context.Context, key string, fn func() (fetched, error)) (v fetched, shared bool, err error) {
	g.mu.Lock()
	if g.calls == nil {
		g.calls = make(map[string]*flight)
	}
	f, ok := g.calls[key]
	if !ok {
		f = &flight{done: make(chan struct{})}
		g.calls[key] = f
		go func() {
			f.val, f.err = fn()
			g.mu.Lock()
			delete(g.calls, key)
			g.mu.Unlock()
			close(f.done)
		}()
	}
	g.mu.Unlock()
	select {
	case <-f.done:
		return f.val, ok, f.err
	case <-ctx.Done():
		return fetched{}, ok, ctx.Err()
	}
}
