// Package ring owns cluster membership and block placement for ringcache.
//
// It has two layers, kept apart in the style of etcd's raft package:
//
//   - A pure, deterministic core (placement.go, config.go, vnodes.go).
//     [NewPlacement] maps a member set and a [Config] to an immutable
//     [Placement] that answers "which nodes own this key, in which order"
//     ([Placement.Owners]). It does no I/O, reads no clock and uses no
//     randomness. Every node that sees the same member set computes the same
//     placement, whatever order the members arrive in.
//   - The I/O edge (membership.go, options.go, gossip.go, view.go, join.go,
//     meta.go, mllog.go, keyfile.go, and the limits on incoming gossip).
//     [Start] runs a hashicorp/memberlist
//     gossip node. Each node advertises its [Member] record in memberlist
//     node metadata. [Membership] turns the live member set into a new
//     immutable [View] (epoch + placement) and swaps it in atomically. Time
//     that decides behaviour here (the rejoin loop) comes from
//     [Options].Clock.
//
// Callers outside this package only read [View] snapshots. They never see
// memberlist types.
//
// Keys are strings of the form volumeUUID + "/" + objectKey. A key maps to one
// of [Config.PartitionCount] partitions by xxhash. Each partition has a ranked
// list of owners, precomputed when the placement is built. The primary is
// buraksezer/consistent's bounded-load owner. The fallbacks are the next
// distinct members on consistent's ring of virtual nodes, clockwise from the
// partition. So a dead node's partitions fall back to many nodes, and mostly
// to the nodes that take them over once the node leaves the placement.
package ring
