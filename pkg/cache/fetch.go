package cache

import (
	"bytes"
	"context"
	"fmt"
	"io"

	"github.com/klauspost/compress/s2"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ringcache/ringcache/pkg/blockkey"
	"github.com/ringcache/ringcache/pkg/blockstore"
)

type fetched struct {
	data         []byte
	compressible bool
}

// fetch returns the whole object from the origin, once for all concurrent
// callers, and stores it. class is the caller's: a read waiting on a fetch
// a Warm call started lifts that fetch to read priority.
func (c *Cache) fetch(ctx context.Context, v *Volume, key string, class slotClass) (fetched, error) {
	fkey := v.UUID + "/" + key
	if class == classRead {
		c.slots.readWaiting(fkey)
		defer c.slots.readDone(fkey)
	}
	f, shared, err := c.flights.do(ctx, fkey, func() (fetched, error) {
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.o.FetchTimeout)
		defer cancel()
		return c.fetchOrigin(fctx, v, key, fkey, class)
	})
	if shared {
		c.c.dedupWaits.Add(1)
	}
	if err != nil {
		if ctx.Err() != nil {
			return fetched{}, status.FromContextError(ctx.Err()).Err()
		}
		return fetched{}, status.Errorf(codes.Unavailable, "fetch %s from origin of volume %q: %v", key, v.Name, err)
	}
	return f, nil
}

// fetchOrigin takes an origin slot, reads the object and stores it. The
// fetch histogram times the origin read only, not the wait for the slot.
func (c *Cache) fetchOrigin(ctx context.Context, v *Volume, key, fkey string, class slotClass) (fetched, error) {
	release, err := c.slots.acquire(ctx, fkey, class)
	if err != nil {
		return fetched{}, err
	}
	defer release()

	start := c.o.Clock.Now()
	c.c.originFetches.Add(1)
	data, err := c.readOrigin(ctx, v, key)
	if c.metrics != nil {
		c.metrics.fetchSeconds.Observe(c.o.Clock.Now().Sub(start).Seconds())
	}
	if err != nil {
		c.c.originErrors.Add(1)
		c.originLog.Refuse(v.Name, nil, key+": "+err.Error())
		return fetched{}, err
	}
	f := fetched{data: data, compressible: compressible(data)}
	if err := c.store.Put(ctx, blockstore.Key{Volume: v.UUID, Object: key}, data, blockstore.Meta{Compressible: f.compressible}); err != nil {
		c.c.storeErrors.Add(1)
		c.log.Warn("storing fetched block failed, served without caching", "volume", v.Name, "key", key, "err", err)
	}
	return f, nil
}

func (c *Cache) readOrigin(ctx context.Context, v *Volume, key string) ([]byte, error) {
	bk, _ := blockkey.Parse(key) // validated by the server
	rc, err := v.Origin.Get(ctx, key, 0, -1)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	buf := bytes.NewBuffer(make([]byte, 0, bk.Size+64))
	chunk := make([]byte, min(c.o.ReadChunkSize, 1<<20))
	for {
		n, err := rc.Read(chunk)
		if n > 0 {
			if c.limiter != nil {
				if werr := c.limiter.WaitN(ctx, n); werr != nil {
					return nil, werr
				}
			}
			buf.Write(chunk[:n])
			c.c.originBytes.Add(int64(n))
			if buf.Len() > bk.Size+64<<10 { // the answer budget counts no more
				return nil, fmt.Errorf("origin returned more than %d bytes for a block of %d", bk.Size+64<<10, bk.Size)
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
	}
	if v.ExactSize && buf.Len() != bk.Size {
		return nil, fmt.Errorf("origin returned %d bytes for a block of %d", buf.Len(), bk.Size)
	}
	return buf.Bytes(), nil
}

// compressible samples a block: worth s2 on the wire only if its first
// 64 KiB shrink by at least 1/8. Model weights, and the objects of
// compressed or encrypted volumes, do not.
func compressible(data []byte) bool {
	sample := data[:min(len(data), 64<<10)]
	if len(sample) < 4<<10 {
		return false
	}
	return len(s2.Encode(nil, sample)) < len(sample)*7/8
}
