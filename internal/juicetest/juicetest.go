// Package juicetest formats JuiceFS volumes and writes files into them with
// the JuiceFS v1.3.1 libraries, the way a read-write JuiceFS client does, so
// that tests have real volumes (real metadata, real objects) to cache. It
// is for tests only.
package juicetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"time"

	"github.com/google/uuid"
	"github.com/juicedata/juicefs/pkg/chunk"
	"github.com/juicedata/juicefs/pkg/fs"
	"github.com/juicedata/juicefs/pkg/meta"
	"github.com/juicedata/juicefs/pkg/object"
	"github.com/juicedata/juicefs/pkg/vfs"

	"github.com/ringcache/ringcache/pkg/juice"
)

// FormatOptions describes a volume, as `juicefs format` flags would.
type FormatOptions struct {
	Name    string // volume name (the object key prefix); required
	MetaURL string // the metadata engine; required
	// Storage is JuiceFS's object storage type; default DefaultStorage.
	Storage   string
	Bucket    string // e.g. http://127.0.0.1:9000/bucket; required
	AccessKey string
	SecretKey string
	// BlockSize is the block size in KiB; default DefaultBlockSize.
	BlockSize int
	// Compression is "lz4", "zstd" or "none"; default "none".
	Compression string
	HashPrefix  bool
	// EncryptKeyPEM is an unencrypted RSA private key in PEM; when set the
	// volume's objects are encrypted (aes256gcm-rsa).
	EncryptKeyPEM string
}

// Defaults of FormatOptions.
const (
	DefaultStorage   = "minio"
	DefaultBlockSize = 4096 // KiB
)

// EnsureDefaults sets every zero optional field to its default.
func (o *FormatOptions) EnsureDefaults() {
	if o.Storage == "" {
		o.Storage = DefaultStorage
	}
	if o.BlockSize == 0 {
		o.BlockSize = DefaultBlockSize
	}
	if o.Compression == "" {
		o.Compression = "none"
	}
}

// Validate reports every required field that is missing.
func (o *FormatOptions) Validate() error {
	var errs []error
	if o.Name == "" {
		errs = append(errs, errors.New("name is required"))
	}
	if o.MetaURL == "" {
		errs = append(errs, errors.New("meta url is required"))
	}
	if o.Bucket == "" {
		errs = append(errs, errors.New("bucket is required"))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("juicetest: invalid options: %w", err)
	}
	return nil
}

// Format creates the volume in its metadata engine and returns its format.
func Format(ctx context.Context, o FormatOptions) (*meta.Format, error) {
	o.EnsureDefaults()
	if err := o.Validate(); err != nil {
		return nil, err
	}
	f := &meta.Format{
		Name:             o.Name,
		UUID:             uuid.New().String(),
		Storage:          o.Storage,
		Bucket:           o.Bucket,
		AccessKey:        o.AccessKey,
		SecretKey:        o.SecretKey,
		BlockSize:        o.BlockSize,
		Compression:      o.Compression,
		HashPrefix:       o.HashPrefix,
		EncryptKey:       o.EncryptKeyPEM,
		TrashDays:        0,
		DirStats:         true,
		MetaVersion:      meta.MaxVersion,
		MinClientVersion: "1.1.0-A",
	}
	if o.EncryptKeyPEM != "" {
		f.EncryptAlgo = object.AES256GCM_RSA
	}
	blob, err := juice.OpenOrigin(f)
	if err != nil {
		return nil, err
	}
	// A freshly started MinIO may refuse requests for a moment; creating an
	// existing bucket fails, so a put proves access.
	var err2 error
	// polls MinIO with a deadline; the last error is returned
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if err2 = blob.Create(); err2 == nil {
			break
		}
		if err2 = blob.Put("juicefs_uuid", bytes.NewReader(nil)); err2 == nil {
			break
		}
	}
	if err2 != nil {
		return nil, fmt.Errorf("juicetest: create bucket: %w", err2)
	}
	m := meta.NewClient(o.MetaURL, meta.DefaultConf())
	defer m.Shutdown()
	saved := *f
	if err := m.Init(f, false); err != nil {
		return nil, fmt.Errorf("juicetest: init: %w", err)
	}
	return &saved, nil
}

// Writer writes files into a volume through the JuiceFS libraries.
type Writer struct {
	m  meta.Meta
	fs *fs.FileSystem
}

// OpenWriter opens a read-write client of the volume at metaURL.
func OpenWriter(ctx context.Context, metaURL string) (*Writer, error) {
	conf := meta.DefaultConf()
	conf.NoBGJob = true
	m := meta.NewClient(metaURL, conf)
	format, err := m.Load(true)
	if err != nil {
		return nil, fmt.Errorf("juicetest: load: %w", err)
	}
	if err := format.Decrypt(); err != nil {
		return nil, err
	}
	blob, err := juice.OpenOrigin(format)
	if err != nil {
		return nil, err
	}
	if format.EncryptKey != "" {
		priv, err := object.ParseRsaPrivateKeyFromPem([]byte(format.EncryptKey), nil)
		if err != nil {
			return nil, fmt.Errorf("juicetest: parse rsa key: %w", err)
		}
		enc, err := object.NewDataEncryptor(object.NewRSAEncryptor(priv), format.EncryptAlgo)
		if err != nil {
			return nil, err
		}
		blob = object.NewEncrypted(blob, enc)
	}
	cc := &chunk.Config{
		BlockSize:  format.BlockSize * 1024,
		Compress:   format.Compression,
		HashPrefix: format.HashPrefix,
		GetTimeout: time.Minute,
		PutTimeout: time.Minute,
		MaxUpload:  20,
		MaxRetries: 3,
		BufferSize: 300 << 20,
		CacheDir:   "memory",
		CacheSize:  0,
	}
	cc.SelfCheck(format.UUID)
	store := chunk.NewCachedStore(blob, *cc, nil)
	if err := m.NewSession(false); err != nil {
		return nil, fmt.Errorf("juicetest: session: %w", err)
	}
	vc := &vfs.Config{Meta: conf, Format: *format, Chunk: cc, AttrTimeout: time.Second, DirEntryTimeout: time.Second}
	vc.Format.RemoveSecret()
	jfs, err := fs.NewFileSystem(vc, m, store, nil)
	if err != nil {
		return nil, fmt.Errorf("juicetest: filesystem: %w", err)
	}
	return &Writer{m: m, fs: jfs}, nil
}

// WriteFile writes data to p (absolute in the volume), creating parent
// directories.
func (w *Writer) WriteFile(p string, data []byte) error {
	ctx := meta.Background()
	f, err := w.create(ctx, p)
	if err != nil {
		return err
	}
	for off := 0; off < len(data); {
		n, e := f.Write(ctx, data[off:])
		if e != 0 {
			f.Close(ctx)
			return fmt.Errorf("juicetest: write %s: %w", p, e)
		}
		off += n
	}
	if e := f.Close(ctx); e != 0 {
		return fmt.Errorf("juicetest: close %s: %w", p, e)
	}
	return nil
}

// Close ends the client's session.
func (w *Writer) Close() error {
	return w.m.CloseSession()
}

// create creates the file p (absolute in the volume) and its parent
// directories.
func (w *Writer) create(ctx meta.Context, p string) (*fs.File, error) {
	if dir := path.Dir(p); dir != "/" {
		if e := w.fs.MkdirAll(ctx, dir, 0o755, 0); e != 0 && !errors.Is(e, os.ErrExist) {
			return nil, fmt.Errorf("juicetest: mkdir %s: %w", dir, e)
		}
	}
	f, e := w.fs.Create(ctx, p, 0o644, 0)
	if e != 0 {
		return nil, fmt.Errorf("juicetest: create %s: %w", p, e)
	}
	return f, nil
}
