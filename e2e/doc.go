// Package e2e holds ringcache's multi-process tests: real Redis, a real S3
// server (MinIO) as the origin, cache nodes as separate processes on
// loopback (internal/cluster), real FUSE mounts, the CSI plugin's
// processes and a real API server. The harness lives in the *_harness_test
// files and poll_test.go: a test waits for another process only through
// pollUntil (or a poll loop that says it polls with a deadline), or for an
// event it logs or counts, never by sleeping (TestHostilePeer's one fixed
// hold is the length of an attack, after the event that shows it landed).
package e2e
