// Package prefetch warms the ringcache ring: it puts the blocks of chosen
// files of a JuiceFS volume on the cache nodes that own them before readers
// ask for them, reports how much of a set of files is cached, and predicts
// what a warm-up would fetch.
//
// A warm-up goes
//
//	paths → inodes → chunks → slices → block keys        (NewPlan, metadata engine only, no mount)
//	      → owners on the ring (first Replicas owners)    (Executor, from a Ring)
//	      → batched Warm calls per owner                  (Options.BatchSize, Options.Concurrency)
//	      → owners fetch misses from the origin           (node side: pkg/cache)
//
// Symlinks in the paths given are followed within the volume, and those
// found in a tree only into that tree (juice.Resolve); Plan.Resolved says
// where each path led. A path that matches no regular file is an error
// (ErrNoFiles), so a warm-up never succeeds at nothing.
//
// The Executor asks each owner which blocks of a batch it already holds
// (Has) and sends only the others in a Warm call, so cached blocks cost no
// origin traffic and none of the warm-up's bandwidth budget. The budget
// (Options.Bandwidth, bytes/s for the whole warm-up across owners) paces
// batches by the bytes they will fetch. A block that fails is retried with
// exponential backoff; when an owner fails a call (unreachable, timed out)
// the executor asks the Ring for a fresh placement and sends the block to
// whoever owns it then, so a warm-up survives an owner dying mid-way. After
// a placement change, blocks already done whose owners changed are warmed
// again on their new owners. Progress (files, blocks, bytes done/total,
// failed, rate, ETA) goes to Options.OnProgress; Run returns a Result with
// the blocks that failed for good and why.
//
// Check reports how much of a plan is held by the blocks' owners (overall,
// per node, per file); DryRun reports what a warm-up would fetch and
// whether it fits the ring's free capacity.
//
// Fairness between concurrent warm-ups, and reads never waiting behind a
// warm-up, are enforced by each node (pkg/cache: reads go first for the
// node's origin slots, warm fetches hold at most cache.WarmSlots of them);
// the Bandwidth budget here is per warm-up.
//
// Scheduled warm-ups and the Kubernetes controller for Warmup objects build
// on this package: see pkg/prefetch/api/v1alpha1 and pkg/prefetch/controller.
package prefetch
