package prefetch

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/ringcache/ringcache/pkg/peer"
	"github.com/ringcache/ringcache/pkg/peer/peerpb"
	"github.com/ringcache/ringcache/pkg/ring"
)

// Node is the part of a cache node's peer client the executor uses.
// *peer.Client implements it.
type Node interface {
	Warm(ctx context.Context, volume string, keys []string) ([]*peerpb.WarmResult, error)
	Has(ctx context.Context, volume string, keys []string) ([]int64, error)
	Status(ctx context.Context) (*peerpb.StatusResponse, error)
}

// Ring is where an Executor learns the ring and reaches its members.
// ClusterRing is the implementation that asks cache nodes; tests may give
// a fixed or scripted placement.
type Ring interface {
	// Placement returns the current placement. The executor calls it when
	// a run starts, after a member failed a call (to find the new owners
	// of its blocks), every Options.ViewRefresh, and when a run is about
	// to end (to catch owners that changed meanwhile).
	Placement(ctx context.Context) (*ring.Placement, error)
	// Node returns a client of the member whose peer address is addr. It
	// may return the same client for every call with the same addr; the
	// executor never closes it.
	Node(addr string) (Node, error)
}

// ClusterRing is a Ring that learns the placement from the Status of cache
// nodes: its seeds first, then the members it last saw, the first that
// answers. It dials members with the cluster token and keeps one client
// per address until Close.
type ClusterRing struct {
	token []byte
	seeds []string
	// StatusTimeout bounds one Status call (default 10s).
	StatusTimeout time.Duration

	mu      sync.Mutex
	clients map[string]*peer.Client
	known   []string // member addresses of the last placement
}

// NewClusterRing returns a ClusterRing asking seeds (peer addresses,
// host:port) with the cluster token.
func NewClusterRing(token []byte, seeds ...string) (*ClusterRing, error) {
	if err := peer.ValidateToken(token); err != nil {
		return nil, err
	}
	if len(seeds) == 0 {
		return nil, errors.New("cluster ring: no seed addresses")
	}
	return &ClusterRing{token: slices.Clone(token), seeds: slices.Clone(seeds), StatusTimeout: 10 * time.Second, clients: map[string]*peer.Client{}}, nil
}

// Status returns the status of the first seed, or else of the first member
// last seen, that answers.
func (c *ClusterRing) Status(ctx context.Context) (*peerpb.StatusResponse, error) {
	c.mu.Lock()
	addrs := slices.Clone(c.seeds)
	for _, a := range c.known {
		if !slices.Contains(addrs, a) {
			addrs = append(addrs, a)
		}
	}
	c.mu.Unlock()
	var errs []error
	for _, a := range addrs {
		n, err := c.client(a)
		if err == nil {
			sctx, cancel := context.WithTimeout(ctx, c.StatusTimeout)
			var st *peerpb.StatusResponse
			st, err = n.Status(sctx)
			cancel()
			if err == nil {
				return st, nil
			}
		}
		errs = append(errs, fmt.Errorf("status of %s: %w", a, err))
		if ctx.Err() != nil {
			break
		}
	}
	return nil, errors.Join(errs...)
}

// Placement implements Ring.
func (c *ClusterRing) Placement(ctx context.Context) (*ring.Placement, error) {
	st, err := c.Status(ctx)
	if err != nil {
		return nil, err
	}
	p, err := peer.StatusPlacement(st)
	if err != nil {
		return nil, err
	}
	var known []string
	for _, m := range p.Members() {
		known = append(known, m.Addr)
	}
	c.mu.Lock()
	c.known = known
	c.mu.Unlock()
	return p, nil
}

// Node implements Ring.
func (c *ClusterRing) Node(addr string) (Node, error) { return c.client(addr) }

func (c *ClusterRing) client(addr string) (*peer.Client, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.clients == nil {
		return nil, errors.New("cluster ring: closed")
	}
	if cl, ok := c.clients[addr]; ok {
		return cl, nil
	}
	cl, err := peer.Dial(addr, peer.ClientOptions{Token: c.token})
	if err != nil {
		return nil, err
	}
	c.clients[addr] = cl
	return cl, nil
}

// Close closes every client.
func (c *ClusterRing) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var errs []error
	for _, cl := range c.clients {
		errs = append(errs, cl.Close())
	}
	c.clients = nil
	return errors.Join(errs...)
}

// samePlacement reports whether a and b place every key alike.
func samePlacement(a, b *ring.Placement) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Config() == b.Config() && slices.Equal(a.Members(), b.Members())
}
