// Package peer owns the protocol between ringcache cache nodes and their
// clients: the gRPC service in peerpb, the server a cache node runs over
// its block store and its volumes' origins, the client mounts and the
// prefetch controller use, and the cluster-token authentication of both.
//
// A node serves a block from its store; on a miss it fetches the object
// from the origin once however many requests wait for it (single flight),
// stores it and serves it. A node never forwards a request to another node,
// so a request crosses at most one hop. Every response carries a CRC32C of
// the bytes it returns and the client verifies it, so a block damaged on
// disk, in memory or on the wire is never handed to a reader.
package peer
