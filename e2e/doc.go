// Package e2e holds ringcache's multi-process tests: real Redis, a real S3
// server (MinIO) as the origin, cache nodes as separate processes on
// loopback, and (later) real FUSE mounts and a real API server.
package e2e
