package juice

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
	"sync"

	"github.com/juicedata/juicefs/pkg/meta"
	"github.com/juicedata/juicefs/pkg/object"
	"github.com/juicedata/juicefs/pkg/utils"
	"github.com/sirupsen/logrus"
)

// ErrBadMetaURL is returned for a metadata URL that JuiceFS cannot open.
var ErrBadMetaURL = errors.New("invalid metadata url")

// ErrNotFormatted is returned when the metadata engine holds no volume.
var ErrNotFormatted = errors.New("volume is not formatted")

// metaSchemes are the metadata engines ringcache accepts. JuiceFS's
// meta.NewClient exits the process on a URL it cannot parse, so URLs are
// checked here first.
var metaSchemes = map[string]bool{
	"redis": true, "rediss": true, "unix": true,
	"sqlite3": true, "mysql": true, "postgres": true,
	"tikv": true, "etcd": true, "badger": true,
}

var quietOnce sync.Once

// quietJuiceFS lowers the JuiceFS libraries' own logging to errors: they
// log to stderr with their own format, and at info level they print
// addresses on every open.
func quietJuiceFS() {
	quietOnce.Do(func() { utils.SetLogLevel(logrus.ErrorLevel) })
}

// Volume is one JuiceFS volume as a cache node sees it: its identity and
// layout from the metadata engine, and its origin object store.
type Volume struct {
	Name        string // the name ringcache was configured with
	UUID        string // the volume's UUID from its format; part of every cache key
	FormatName  string // the volume's own name, which prefixes its object keys
	Storage     string // origin storage type, e.g. "s3", "minio", "oss", "ceph"
	BlockSize   int64  // bytes
	Compression string // "", "lz4" or "zstd"
	HashPrefix  bool
	Encrypted   bool

	origin object.ObjectStorage
}

// validateMetaURL checks what JuiceFS would otherwise treat as fatal. The
// returned error never contains the URL, which may hold a password.
func validateMetaURL(metaURL string) error {
	i := strings.Index(metaURL, "://")
	if i <= 0 {
		return fmt.Errorf("%w: missing scheme (want e.g. redis://host:6379/1)", ErrBadMetaURL)
	}
	scheme := metaURL[:i]
	if !metaSchemes[scheme] {
		return fmt.Errorf("%w: unsupported scheme %q", ErrBadMetaURL, scheme)
	}
	if scheme == "redis" || scheme == "rediss" {
		if _, err := url.Parse(metaURL); err != nil {
			return fmt.Errorf("%w: cannot parse", ErrBadMetaURL)
		}
	}
	return nil
}

// OpenVolume loads the format of the volume whose metadata engine is at
// metaURL and opens its origin object store. name is the name the operator
// gave the volume; it may differ from the volume's own name.
//
// The metadata client is opened read-only and closed again: a cache node
// needs only the format.
func OpenVolume(ctx context.Context, name, metaURL string) (*Volume, error) {
	quietJuiceFS()
	if err := validateMetaURL(metaURL); err != nil {
		return nil, fmt.Errorf("volume %q: %w", name, err)
	}
	format, err := LoadFormat(ctx, metaURL)
	if err != nil {
		return nil, fmt.Errorf("volume %q: %w", name, err)
	}
	origin, err := OpenOrigin(format)
	if err != nil {
		return nil, fmt.Errorf("volume %q: %w", name, err)
	}
	return &Volume{
		Name:        name,
		UUID:        format.UUID,
		FormatName:  format.Name,
		Storage:     format.Storage,
		BlockSize:   int64(format.BlockSize) << 10,
		Compression: format.Compression,
		HashPrefix:  format.HashPrefix,
		Encrypted:   format.EncryptKey != "",
		origin:      origin,
	}, nil
}

// LoadFormat reads a volume's format from its metadata engine, with its
// secrets decrypted.
func LoadFormat(ctx context.Context, metaURL string) (*meta.Format, error) {
	m, f, err := OpenMeta(ctx, metaURL)
	if err != nil {
		return nil, err
	}
	m.Shutdown()
	return f, nil
}

// OpenOrigin opens the object store a JuiceFS client of this format would
// use, prefix included, without the encryption layer.
func OpenOrigin(format *meta.Format) (object.ObjectStorage, error) {
	var blob object.ObjectStorage
	var err error
	storage := strings.ToLower(format.Storage)
	if format.Shards > 1 {
		blob, err = object.NewSharded(storage, format.Bucket, format.AccessKey, format.SecretKey, format.SessionToken, format.Shards)
	} else {
		blob, err = object.CreateStorage(storage, format.Bucket, format.AccessKey, format.SecretKey, format.SessionToken)
	}
	if err != nil {
		// The error may echo the bucket URL, never the credentials.
		return nil, fmt.Errorf("open %s origin: %w", storage, err)
	}
	return object.WithPrefix(blob, format.Name+"/"), nil
}

// Get reads bytes [off, off+limit) of the object key from the origin (limit
// < 0 reads to the end). The object store clients of JuiceFS v1.3.1 take no
// context, so cancelling ctx closes the body instead.
func (v *Volume) Get(ctx context.Context, key string, off, limit int64) (io.ReadCloser, error) {
	type result struct {
		rc  io.ReadCloser
		err error
	}
	done := make(chan result, 1)
	go func() {
		rc, err := v.origin.Get(key, off, limit)
		done <- result{rc, err}
	}()
	select {
	case r := <-done:
		if r.err != nil {
			return nil, fmt.Errorf("origin get %s: %w", key, r.err)
		}
		return newCtxReader(ctx, r.rc), nil
	case <-ctx.Done():
		go func() {
			if r := <-done; r.rc != nil {
				r.rc.Close()
			}
		}()
		return nil, fmt.Errorf("origin get %s: %w", key, ctx.Err())
	}
}

// Origin returns the volume's origin object store (prefix applied, no
// encryption layer).
func (v *Volume) Origin() object.ObjectStorage { return v.origin }

// Close releases the origin's resources.
func (v *Volume) Close() error {
	object.Shutdown(v.origin)
	return nil
}

// ctxReader closes the body when its context is done, which unblocks a
// Read waiting on a slow origin.
type ctxReader struct {
	ctx  context.Context
	rc   io.ReadCloser
	stop func() bool
}

func newCtxReader(ctx context.Context, rc io.ReadCloser) *ctxReader {
	return &ctxReader{ctx: ctx, rc: rc, stop: context.AfterFunc(ctx, func() { rc.Close() })}
}

func (r *ctxReader) Read(p []byte) (int, error) {
	n, err := r.rc.Read(p)
	if err != nil && r.ctx.Err() != nil {
		return n, r.ctx.Err()
	}
	return n, err
}

func (r *ctxReader) Close() error {
	r.stop()
	return r.rc.Close()
}
