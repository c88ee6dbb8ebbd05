// Command ringcache-bench runs ringcache's benchmarks against their
// baselines, side by side in one run, on a local deployment of real
// processes (internal/cluster): Redis, MinIO behind a throttling proxy,
// cache nodes and FUSE mounts. Each benchmark prints a table and can write
// its results as JSON; sizes are flags so the same harness runs larger on a
// bigger machine.
//
//	ringcache-bench mount-read   warm model read through a mount: ring
//	                             variants vs. a JuiceFS mount whose local
//	                             disk cache holds the model
//	ringcache-bench warmup       warm-up throughput vs. the origin's cap
//	ringcache-bench ring         keys moved on join/leave vs. 1/N, load spread
//	ringcache-bench storm        N readers through K nodes (cold, warm) vs.
//	                             N readers straight from the origin
//	ringcache-bench failover     read latency during a storm with a node
//	                             killed vs. without
//	ringcache-bench peer         warm block serving by a cache node vs. a
//	                             plain TCP copy between two processes
//	ringcache-bench report       SVG charts from the results in docs/bench
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: ringcache-bench BENCHMARK [flags]\n\nbenchmarks: peer, storm, mount-read, warmup, ring, failover")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	switch os.Args[1] {
	case "mount-read":
		err = mountRead(ctx, os.Args[2:])
	case "warmup":
		err = warmup(ctx, os.Args[2:])
	case "ring":
		err = ringBench(ctx, os.Args[2:])
	case "storm":
		err = stormBench(ctx, os.Args[2:])
	case "failover":
		err = failoverBench(ctx, os.Args[2:])
	case "peer":
		err = peerBench(ctx, os.Args[2:])
	case "tcp-serve": // the peer benchmark's baseline server process
		err = tcpServe()
	case "report":
		err = report(os.Args[2:])
	default:
		fmt.Fprintf(os.Stderr, "ringcache-bench: unknown benchmark %q\n", os.Args[1])
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "ringcache-bench:", err)
		os.Exit(1)
	}
}
