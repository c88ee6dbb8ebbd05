// Package peer owns the protocol between ringcache cache nodes and their
// clients: the gRPC service in peerpb and the data plane beside it on the
// same port, the server's checks of every request (request.go) and its
// limits on what callers can make a node hold (limits.go), chunking, the
// CRC32C on the wire and s2, the client mounts and the prefetch
// controller use, and the cluster-token authentication of both.
//
// The server serves a Cache (cache.go), the one interface between the
// wire and the node: it calls the cache only with authenticated, checked
// requests, and the cache (pkg/cache) answers from the node's block store
// or, on a miss, from the origin, once however many requests wait for it.
// A node never forwards a request to another node, so a request crosses
// at most one hop. Every response carries a CRC32C of the bytes it returns
// and the client verifies it, so a block damaged on disk, in memory or on
// the wire is never handed to a reader.
package peer
