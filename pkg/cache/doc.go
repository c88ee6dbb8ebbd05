// Package cache owns what a cache node does with a request once the peer
// protocol has checked it: serve the block from the node's block store,
// or on a miss fetch the object from its volume's origin once however
// many requests wait for it (single flight), store it and serve it. It
// owns the origin slots and their scheduler (reads before warm-ups, warm
// fetches capped at WarmSlots), the origin bandwidth limit and fetch
// timeout, and the cache's counters and metrics.
//
// A Cache implements peer.Cache: pkg/peer keeps the wire (gRPC, the data
// plane, authentication, limits, chunking, checksums, s2) and calls the
// cache through that one interface. The package needs only the block
// store and the protocol's types, so unit tests and internal/peertest run
// real caches without the JuiceFS client or gossip (pkg/node wires a
// cache to juice volumes and the ring).
package cache
