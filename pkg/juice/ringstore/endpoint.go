package ringstore

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"

	"github.com/juicedata/juicefs/pkg/object"

	"github.com/ringcache/ringcache/pkg/peer"
)

// StorageName is the storage type the ring storage is registered under in
// JuiceFS clients: `juicefs mount --storage ringcache --bucket <Endpoint>`.
const StorageName = "ringcache"

// ErrBadEndpoint is returned for a bucket string that is not an Endpoint.
var ErrBadEndpoint = errors.New("invalid ringcache endpoint")

// Endpoint is what a mount passes to JuiceFS as the bucket of the ring
// storage. It names no secrets: the token is read from TokenFile, and the
// origin's credentials come from the volume's format as JuiceFS passes them.
type Endpoint struct {
	LocalNode     string // host:port of the cache node on this host
	OriginStorage string // the volume's real storage type, e.g. "s3"
	OriginBucket  string // the volume's real bucket
	Volume        string // volume UUID
	Prefix        string // "<format name>/"
	TokenFile     string
	Owners        int // 0: default
}

// String encodes e as ringcache://NODE?storage=..&bucket=..&volume=..&prefix=..&token-file=..
func (e Endpoint) String() string {
	q := url.Values{}
	q.Set("storage", e.OriginStorage)
	q.Set("bucket", e.OriginBucket)
	q.Set("volume", e.Volume)
	q.Set("prefix", e.Prefix)
	q.Set("token-file", e.TokenFile)
	if e.Owners > 0 {
		q.Set("owners", strconv.Itoa(e.Owners))
	}
	return (&url.URL{Scheme: StorageName, Host: e.LocalNode, Path: "/", RawQuery: q.Encode()}).String()
}

// ParseEndpoint decodes and checks an endpoint.
func ParseEndpoint(s string) (Endpoint, error) {
	u, err := url.Parse(s)
	if err != nil || u.Scheme != StorageName {
		return Endpoint{}, fmt.Errorf("%w: want %s://HOST:PORT/?storage=..", ErrBadEndpoint, StorageName)
	}
	q := u.Query()
	e := Endpoint{
		LocalNode: u.Host, OriginStorage: q.Get("storage"), OriginBucket: q.Get("bucket"),
		Volume: q.Get("volume"), Prefix: q.Get("prefix"), TokenFile: q.Get("token-file"),
	}
	if _, _, err := net.SplitHostPort(e.LocalNode); err != nil {
		return Endpoint{}, fmt.Errorf("%w: local node %q is not host:port", ErrBadEndpoint, e.LocalNode)
	}
	if e.OriginStorage == "" || e.OriginStorage == StorageName || e.OriginBucket == "" || e.Volume == "" || !strings.HasSuffix(e.Prefix, "/") || e.TokenFile == "" {
		return Endpoint{}, fmt.Errorf("%w: storage, bucket, volume, prefix and token-file are required", ErrBadEndpoint)
	}
	if o := q.Get("owners"); o != "" {
		if e.Owners, err = strconv.Atoi(o); err != nil || e.Owners < 1 {
			return Endpoint{}, fmt.Errorf("%w: owners must be a positive integer", ErrBadEndpoint)
		}
	}
	return e, nil
}

// Creator returns the object.Creator to register under StorageName. Each
// store it creates starts from base (logger, metrics, timeouts) and takes
// the rest from the endpoint. Register it with
//
//	object.Register(ringstore.StorageName, ringstore.Creator(base))
func Creator(base Options) object.Creator {
	return func(endpoint, accessKey, secretKey, token string) (object.ObjectStorage, error) {
		e, err := ParseEndpoint(endpoint)
		if err != nil {
			return nil, err
		}
		tok, err := peer.LoadToken(e.TokenFile)
		if err != nil {
			return nil, err
		}
		origin, err := object.CreateStorage(e.OriginStorage, e.OriginBucket, accessKey, secretKey, token)
		if err != nil {
			return nil, fmt.Errorf("open %s origin: %w", e.OriginStorage, err)
		}
		o := base
		o.Origin, o.LocalNode, o.Token, o.Volume, o.Prefix = origin, e.LocalNode, tok, e.Volume, e.Prefix
		if e.Owners > 0 {
			o.Owners = e.Owners
		}
		return New(o)
	}
}

// OriginCreator returns an object.Creator for the same endpoints that
// opens only the origin. A JuiceFS mount's supervisor process opens the
// storage to check it but serves no reads, so it needs no ring.
func OriginCreator() object.Creator {
	return func(endpoint, accessKey, secretKey, token string) (object.ObjectStorage, error) {
		e, err := ParseEndpoint(endpoint)
		if err != nil {
			return nil, err
		}
		return object.CreateStorage(e.OriginStorage, e.OriginBucket, accessKey, secretKey, token)
	}
}
