// Package cluster runs a whole ringcache deployment on one machine, as
// separate processes on loopback: Redis and MinIO (from realtest), an origin
// proxy that counts and throttles, a formatted JuiceFS volume, cache nodes
// (cmd/cachenode) and read-only mounts (cmd/csi mount). The end-to-end
// tests, the demo and the benchmarks share it.
package cluster

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"

	"github.com/juicedata/juicefs/pkg/meta"
	"github.com/juicedata/juicefs/pkg/object"

	"github.com/ringcache/ringcache/internal/juicetest"
	"github.com/ringcache/ringcache/internal/realtest"
	"github.com/ringcache/ringcache/pkg/juice"
	"github.com/ringcache/ringcache/pkg/ring"
)

// Token is the cluster token the local deployments use.
const Token = "local-cluster-token-0123456789"

// Options configures an Env.
type Options struct {
	// Dir holds every server's files and logs. Required.
	Dir string
	// Bin holds the cachenode and csi binaries. Required for nodes and
	// mounts.
	Bin string
	// Volume describes the volume to format; Name defaults to
	// DefaultVolumeName. MetaURL, Bucket and credentials are filled in.
	Volume juicetest.FormatOptions
}

// DefaultVolumeName is the volume's name unless Options.Volume names it.
const DefaultVolumeName = "models"

// EnsureDefaults sets every zero optional field to its default.
func (o *Options) EnsureDefaults() {
	if o.Volume.Name == "" {
		o.Volume.Name = DefaultVolumeName
	}
}

// Validate reports every required field that is missing.
func (o *Options) Validate() error {
	if o.Dir == "" {
		return fmt.Errorf("cluster: invalid options: %w", errors.New("dir is required"))
	}
	return nil
}

// Env is a running origin: Redis, MinIO, the counting proxy and a
// formatted volume, plus the nodes and mounts started from it.
type Env struct {
	Dir, Bin  string
	Redis     *realtest.Redis
	MinIO     *realtest.MinIO
	Proxy     *realtest.OriginProxy
	MetaURL   string
	Format    *meta.Format
	Direct    object.ObjectStorage // the volume's objects straight from MinIO
	TokenFile string
	// GossipKeyFile holds a random gossip key that only the cache nodes
	// get (mounts get TokenFile only).
	GossipKeyFile string

	mu      sync.Mutex
	closers []func()
}

// Start starts Redis, MinIO and the proxy and formats the volume. Close
// stops everything started from the Env.
func Start(ctx context.Context, o Options) (e *Env, err error) {
	o.EnsureDefaults()
	if err := o.Validate(); err != nil {
		return nil, err
	}
	e = &Env{Dir: o.Dir, Bin: o.Bin}
	defer func() {
		if err != nil {
			e.Close()
		}
	}()
	for _, d := range []string{"redis", "minio"} {
		if err := os.MkdirAll(filepath.Join(o.Dir, d), 0o755); err != nil {
			return nil, err
		}
	}
	if e.Redis, err = realtest.RunRedis(filepath.Join(o.Dir, "redis")); err != nil {
		return nil, err
	}
	e.onClose(e.Redis.Close)
	if e.MinIO, err = realtest.RunMinIO(filepath.Join(o.Dir, "minio")); err != nil {
		return nil, err
	}
	e.onClose(e.MinIO.Close)
	if e.Proxy, err = realtest.RunOriginProxy(e.MinIO.Addr); err != nil {
		return nil, err
	}
	e.onClose(e.Proxy.Close)
	if e.MetaURL, err = e.Redis.NewDatabase(); err != nil {
		return nil, err
	}
	fo := o.Volume
	fo.MetaURL = e.MetaURL
	fo.Bucket = "http://" + e.Proxy.Addr + "/ringcache"
	fo.AccessKey, fo.SecretKey = e.MinIO.AccessKey, e.MinIO.SecretKey
	if e.Format, err = juicetest.Format(ctx, fo); err != nil {
		return nil, fmt.Errorf("format: %w", err)
	}
	df := *e.Format
	df.Bucket = "http://" + e.MinIO.Addr + "/ringcache"
	if e.Direct, err = juice.OpenOrigin(&df); err != nil {
		return nil, err
	}
	e.TokenFile = filepath.Join(o.Dir, "token")
	if err := os.WriteFile(e.TokenFile, []byte(Token+"\n"), 0o600); err != nil {
		return nil, err
	}
	if e.GossipKeyFile, err = WriteGossipKeyFile(filepath.Join(o.Dir, "gossip-key")); err != nil {
		return nil, err
	}
	return e, nil
}

// WriteGossipKeyFile writes a new random gossip key to path (mode 0600)
// and returns path.
func WriteGossipKeyFile(path string) (string, error) {
	key := make([]byte, ring.KeySize)
	if _, err := rand.Read(key); err != nil {
		return "", err
	}
	if err := os.WriteFile(path, []byte(base64.StdEncoding.EncodeToString(key)+"\n"), 0o600); err != nil {
		return "", err
	}
	return path, nil
}

func (e *Env) onClose(f func()) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.closers = append(e.closers, f)
}

// Close stops mounts, nodes and servers, newest first.
func (e *Env) Close() {
	e.mu.Lock()
	cs := e.closers
	e.closers = nil
	e.mu.Unlock()
	for i := len(cs) - 1; i >= 0; i-- {
		cs[i]()
	}
}

// Write writes files into the volume with a separate read-write JuiceFS
// client.
func (e *Env) Write(ctx context.Context, files map[string][]byte) error {
	w, err := juicetest.OpenWriter(ctx, e.MetaURL)
	if err != nil {
		return err
	}
	defer w.Close()
	for p, b := range files {
		if err := w.WriteFile(p, b); err != nil {
			return err
		}
	}
	return nil
}

// Blocks lists the volume's data block keys with their bytes as stored.
func (e *Env) Blocks() (map[string][]byte, error) {
	objs, err := object.ListAll(e.Direct, "chunks/", "", true)
	if err != nil {
		return nil, err
	}
	out := map[string][]byte{}
	for o := range objs {
		if o == nil || o.IsDir() {
			continue
		}
		rc, err := e.Direct.Get(o.Key(), 0, -1)
		if err != nil {
			return nil, err
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			return nil, err
		}
		out[o.Key()] = b
	}
	return out, nil
}

// OriginGets is the number of origin GETs of one data block key.
func (e *Env) OriginGets(key string) int {
	return e.Proxy.Gets()[e.Format.Name+"/"+key]
}

// OriginBlockGets is the number of origin GETs of all data blocks.
func (e *Env) OriginBlockGets() int {
	return e.Proxy.GetsWithPrefix(e.Format.Name + "/chunks/")
}
