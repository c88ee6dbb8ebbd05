package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"

	"github.com/ringcache/ringcache/internal/cluster"
)

// deployment is a local deployment with a random model under /m and
// running cache nodes.
type deployment struct {
	dir   string
	env   *cluster.Env
	nodes []*cluster.Node
	keys  []string // the model's block keys
}

// deploy starts a deployment in a temporary directory: Redis, MinIO, a
// volume holding a model of size bytes in 4 shards, and nodes cache nodes.
// close removes everything.
func deploy(ctx context.Context, bin string, size int64, nodes int) (*deployment, error) {
	binAbs, err := filepath.Abs(bin)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "ringcache-bench")
	if err != nil {
		return nil, err
	}
	d := &deployment{dir: dir}
	if d.env, err = cluster.Start(ctx, cluster.Options{Dir: dir, Bin: binAbs}); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	files := map[string][]byte{}
	for i := range 4 {
		b := make([]byte, size/4)
		rand.Read(b)
		files[fmt.Sprintf("/m/model-%d.safetensors", i)] = b
	}
	if err := d.env.Write(ctx, files); err != nil {
		d.close()
		return nil, err
	}
	blocks, err := d.env.Blocks()
	if err != nil {
		d.close()
		return nil, err
	}
	for k := range blocks {
		d.keys = append(d.keys, k)
	}
	if d.nodes, _, err = d.env.StartNodes(ctx, nodes); err != nil {
		d.close()
		return nil, err
	}
	return d, nil
}

func (d *deployment) close() {
	d.env.Close()
	os.RemoveAll(d.dir)
}
