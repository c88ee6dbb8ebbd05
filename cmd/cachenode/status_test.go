package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/ringcache/ringcache/pkg/peer/peerpb"
)

func TestPrintStatus(t *testing.T) {
	var b bytes.Buffer
	printStatus(&b, &peerpb.StatusResponse{
		NodeId: "n1", Addr: "10.0.0.1:9700", RingEpoch: 4, PartitionCount: 7919, Load: 1.25,
		Members: []*peerpb.Member{
			{Id: "n1", Addr: "10.0.0.1:9700", Weight: 2, Share: 0.5},
			{Id: "n2", Addr: "10.0.0.2:9700", Weight: 1, Share: 0.25},
		},
		StoreBlocks: 10, StoreBytes: 40 << 20, StoreCapacityBytes: 400 << 20,
		Hits: 3, Misses: 1, OriginFetches: 1, OriginBytes: 4 << 20, DedupWaits: 2,
		Volumes: []*peerpb.VolumeInfo{{Name: "models", Uuid: "u-1", Storage: "s3", BlockSize: 4 << 20}},
	})
	out := b.String()
	for _, want := range []string{
		"Node n1 at 10.0.0.1:9700, ring epoch 4: 2 members, 7919 partitions, load bound 1.25",
		"n1 (this node)", "50.0%", "25.0%",
		"Store: 10 blocks, 40.0 MiB of 400.0 MiB (10.0%)",
		"hit ratio 75.0%", "origin: 1 fetches, 4.0 MiB", "2 requests joined a fetch in flight",
		"models", "u-1", "4.0 MiB",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("status output lacks %q:\n%s", want, out)
		}
	}
}
