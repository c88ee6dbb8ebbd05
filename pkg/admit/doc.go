// Package admit owns the admission limits a node puts on untrusted
// connections and calls: Slots, a semaphore bounding what callers hold in
// all and per remote host (with a bounded line of waiters, an optional
// wait timeout), and Refusals, which counts refused callers by reason and
// logs them at most once per interval (per reason, or per reason and
// remote host). Both take their clock (pkg/clock) and, for Refusals, the
// Prometheus registerer and metric name from their options: the package
// has no globals, so pkg/peer (peer port, data plane, batch calls) and
// pkg/ring (gossip streams) each configure their own.
package admit
