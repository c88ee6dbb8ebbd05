package juice_test

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/juicedata/juicefs/pkg/object"

	"github.com/ringcache/ringcache/internal/juicetest"
	"github.com/ringcache/ringcache/internal/realtest"
	"github.com/ringcache/ringcache/pkg/blockkey"
	"github.com/ringcache/ringcache/pkg/juice"
)

func TestOpenVolumeRealRedisAndMinIO(t *testing.T) {
	redis := realtest.StartRedis(t)
	minio := realtest.StartMinIO(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	for _, tc := range []struct {
		name string
		fo   juicetest.FormatOptions
	}{
		{"plain", juicetest.FormatOptions{}},
		{"lz4 hash-prefix 1MiB", juicetest.FormatOptions{Compression: "lz4", HashPrefix: true, BlockSize: 1024}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fo := tc.fo
			fo.Name = strings.ReplaceAll(tc.name, " ", "-")
			fo.MetaURL = redis.NewDB(t)
			fo.Bucket = "http://" + minio.Addr + "/juice-test"
			fo.AccessKey, fo.SecretKey = minio.AccessKey, minio.SecretKey
			f, err := juicetest.Format(ctx, fo)
			if err != nil {
				t.Fatal(err)
			}
			w, err := juicetest.OpenWriter(ctx, fo.MetaURL)
			if err != nil {
				t.Fatal(err)
			}
			data := make([]byte, 3<<20)
			for i := range data {
				data[i] = byte(i * 7)
			}
			if err := w.WriteFile("/m/a.bin", data); err != nil {
				t.Fatal(err)
			}
			w.Close()

			v, err := juice.OpenVolume(ctx, "vol", fo.MetaURL)
			if err != nil {
				t.Fatal(err)
			}
			defer v.Close()
			if v.UUID != f.UUID || v.FormatName != fo.Name || v.HashPrefix != fo.HashPrefix || v.Storage != "minio" {
				t.Errorf("volume = %+v, want uuid %s name %s", v, f.UUID, fo.Name)
			}
			wantBS := int64(4 << 20)
			if fo.BlockSize != 0 {
				wantBS = int64(fo.BlockSize) << 10
			}
			if v.BlockSize != wantBS {
				t.Errorf("block size %d, want %d", v.BlockSize, wantBS)
			}
			// Every object under chunks/ is a canonical block key and reads
			// back through the volume's origin as the object store holds it.
			objs, err := object.ListAll(v.Origin(), "chunks/", "", true)
			if err != nil {
				t.Fatal(err)
			}
			n := 0
			for o := range objs {
				if o == nil || o.IsDir() {
					continue
				}
				bk, err := blockkey.Parse(o.Key())
				if err != nil {
					t.Errorf("object %q: %v", o.Key(), err)
					continue
				}
				if bk.HashPrefix != fo.HashPrefix {
					t.Errorf("object %q parsed with hash prefix %v", o.Key(), bk.HashPrefix)
				}
				rc, err := v.Get(ctx, o.Key(), 0, -1)
				if err != nil {
					t.Fatal(err)
				}
				b, err := io.ReadAll(rc)
				rc.Close()
				if err != nil || int64(len(b)) != o.Size() {
					t.Errorf("get %s: %d bytes, err %v; listed size %d", o.Key(), len(b), err, o.Size())
				}
				n++
			}
			if n == 0 {
				t.Fatal("no blocks written")
			}
		})
	}

	t.Run("errors", func(t *testing.T) {
		_, err := juice.OpenVolume(ctx, "x", "ftp://user:hunter2@host/1")
		if !errors.Is(err, juice.ErrBadMetaURL) || strings.Contains(err.Error(), "hunter2") {
			t.Errorf("bad scheme: %v", err)
		}
		_, err = juice.OpenVolume(ctx, "x", "localhost:6379")
		if !errors.Is(err, juice.ErrBadMetaURL) {
			t.Errorf("no scheme: %v", err)
		}
		_, err = juice.OpenVolume(ctx, "x", redis.NewDB(t))
		if !errors.Is(err, juice.ErrNotFormatted) {
			t.Errorf("empty database: got %v, want ErrNotFormatted", err)
		}
	})
}
