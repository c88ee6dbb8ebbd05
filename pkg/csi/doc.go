// Package csi owns ringcache's CSI driver (csi.ringcache.io, CSI spec
// v1.13.0): the identity service (identity.go), the controller service for
// dynamic provisioning of model volumes (controller.go) and the node
// service that mounts models read-only through the ring.
//
// A volume is a model: a directory inside a named JuiceFS volume. The
// controller turns StorageClass parameters and the PVC into a model path
// and checks that it exists; it keeps no state and never deletes data. The
// node mounts each JuiceFS volume once (the `csi mount` process, detached
// so that it outlives the plugin) and bind-mounts models read-only into
// targets, reference counted, with its state persisted for restarts.
// Every request is validated before anything happens, errors are gRPC
// status codes, handlers are idempotent, a second operation on a volume
// that has one in flight gets Aborted, and secrets (the metadata URL)
// never appear in logs or errors. docs/csi.md describes the design.
//
// The node service, by concern: node.go (the Node, its start and close),
// publish.go and unpublish.go (the two RPCs), idle.go (the unmount of a
// shared mount UnmountDelay after its last target), repair.go (adoption,
// remount and re-bind at start, on publish and every RepairInterval),
// health.go (NodeGetVolumeStats, NodeGetVolumeHealth, the readiness
// probe), engine.go (which metadata engine a mount uses), target.go (where
// targets may be), state.go (the persisted state) and files.go (secret
// files and launcher-mode copies). Shared by both services: options.go,
// validate.go and bounds.go (request checks), lock.go (in-flight
// operations), server.go (the gRPC server), mounter.go and proc.go (the
// mount work, the mount processes).
package csi
