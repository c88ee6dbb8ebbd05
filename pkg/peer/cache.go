package peer

import (
	"context"

	"github.com/ringcache/ringcache/pkg/peer/peerpb"
)

// Cache is what a Server serves: the cache node behind the wire, the way
// groupcache's HTTP transport calls its group. The server authenticates
// and bounds every call, checks every request (the key, the range, the
// volume: request.go) and holds the answer budget while an answer waits
// to be sent; it calls the cache only with valid requests, and the cache
// answers from its store or its origins (pkg/cache). Errors are gRPC
// status errors (anything else reaches the caller as Unknown); a cache
// must answer a range the way RangeError maps blockrange.Range.
type Cache interface {
	// Volumes lists the volumes the cache serves, at least one, their
	// names and UUIDs all distinct (the cache checks its volumes). NewServer
	// reads it once.
	Volumes() []Volume
	// Read returns bytes [off, off+limit) of the block key of v (limit
	// -1: to the end) and what the answer says of the block. The server
	// keeps the bytes only until they are sent.
	Read(ctx context.Context, v Volume, key string, off, limit int64) ([]byte, BlockInfo, error)
	// Has returns the size of the block key of v if the cache holds it.
	Has(v Volume, key string) (size int64, ok bool)
	// Warm makes the cache hold the blocks keys of v, fetching the missing
	// ones below reads in priority, and returns one result per key, in
	// order.
	Warm(ctx context.Context, v Volume, keys []string) []*peerpb.WarmResult
	// Status returns what a Status answer reports of the cache.
	Status() CacheStats
}

// Volume is a volume as the protocol names it: requests give its name or
// its UUID, Status lists it.
type Volume struct {
	Name      string // operator-given name; requests may use it instead of the UUID
	UUID      string // the volume's UUID
	Storage   string // origin storage type, for status
	BlockSize int64
}

// BlockInfo is what a read answer says of its block.
type BlockInfo struct {
	ObjectSize   int64         // the whole block's size
	Compressible bool          // worth s2 on the wire
	Source       peerpb.Source // the store or the origin
}

// CacheStats are the cache's part of a Status answer.
type CacheStats struct {
	StoreBlocks, StoreBytes, StoreCapacityBytes, CorruptBlocks int64
	Hits, Misses, OriginFetches, OriginBytes, DedupWaits       int64
}
