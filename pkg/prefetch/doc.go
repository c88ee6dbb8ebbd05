// Package prefetch will own warm-up planning and execution, schedules and
// the Kubernetes controller for Warmup objects. Nothing is implemented yet.
package prefetch
