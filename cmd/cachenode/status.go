package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"text/tabwriter"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/ringcache/ringcache/internal/bytesize"
	"github.com/ringcache/ringcache/internal/cli"
	"github.com/ringcache/ringcache/pkg/peer"
	"github.com/ringcache/ringcache/pkg/peer/peerpb"
)

func runStatus(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := cli.NewFlagSet("status", "Usage: cachenode status [flags]\n\nShows a node's ring members and their shares, its store usage and hit ratio.\n\nFlags:\n", stderr)
	addr := fs.String("addr", "127.0.0.1:9700", "peer address of the node to ask")
	tokenFile := fs.String("token-file", os.Getenv("RINGCACHE_TOKEN_FILE"), "file holding the cluster token (env RINGCACHE_TOKEN_FILE)")
	asJSON := fs.Bool("json", false, "print JSON instead of a table")
	timeout := fs.Duration("timeout", 10*time.Second, "deadline of the call")
	if err := cli.Parse(fs, args, false); err != nil {
		return err
	}
	if *tokenFile == "" {
		return fmt.Errorf("%w: --token-file (or RINGCACHE_TOKEN_FILE) is required", errUsage)
	}
	tok, err := peer.LoadToken(*tokenFile)
	if err != nil {
		return err
	}
	c, err := peer.Dial(*addr, peer.ClientOptions{Token: tok})
	if err != nil {
		return err
	}
	defer c.Close()
	cctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	st, err := c.Status(cctx)
	if err != nil {
		return fmt.Errorf("status of %s: %w", *addr, err)
	}
	if *asJSON {
		b, err := protojson.MarshalOptions{Multiline: true, EmitUnpopulated: true}.Marshal(st)
		if err != nil {
			return err
		}
		fmt.Fprintln(stdout, string(b))
		return nil
	}
	printStatus(stdout, st)
	return nil
}

func printStatus(w io.Writer, st *peerpb.StatusResponse) {
	fmt.Fprintf(w, "Node %s at %s, ring epoch %d: %d members, %d partitions, load bound %.2f\n\n",
		st.NodeId, st.Addr, st.RingEpoch, len(st.Members), st.PartitionCount, st.Load)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "MEMBER\tADDRESS\tWEIGHT\tSHARE\t")
	for _, m := range st.Members {
		self := ""
		if m.Id == st.NodeId {
			self = " (this node)"
		}
		fmt.Fprintf(tw, "%s%s\t%s\t%d\t%.1f%%\t\n", m.Id, self, m.Addr, m.Weight, 100*m.Share)
	}
	tw.Flush()
	used := 0.0
	if st.StoreCapacityBytes > 0 {
		used = 100 * float64(st.StoreBytes) / float64(st.StoreCapacityBytes)
	}
	fmt.Fprintf(w, "\nStore: %d blocks, %s of %s (%.1f%%), %d corrupt blocks dropped\n",
		st.StoreBlocks, bytesize.Format(st.StoreBytes), bytesize.Format(st.StoreCapacityBytes), used, st.CorruptBlocks)
	ratio := "n/a"
	if total := st.Hits + st.Misses; total > 0 {
		ratio = fmt.Sprintf("%.1f%%", 100*float64(st.Hits)/float64(total))
	}
	fmt.Fprintf(w, "Reads: %d hits, %d misses, hit ratio %s; origin: %d fetches, %s; %d requests joined a fetch in flight\n",
		st.Hits, st.Misses, ratio, st.OriginFetches, bytesize.Format(st.OriginBytes), st.DedupWaits)
	fmt.Fprintln(w, "\nVolumes:")
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tUUID\tSTORAGE\tBLOCK SIZE\t")
	for _, v := range st.Volumes {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t\n", v.Name, v.Uuid, v.Storage, bytesize.Format(v.BlockSize))
	}
	tw.Flush()
}
