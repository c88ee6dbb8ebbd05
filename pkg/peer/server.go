package peer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"net"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/klauspost/compress/s2"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"

	"github.com/ringcache/ringcache/pkg/blockkey"
	"github.com/ringcache/ringcache/pkg/blockstore"
	"github.com/ringcache/ringcache/pkg/clock"
	"github.com/ringcache/ringcache/pkg/peer/peerpb"
	"github.com/ringcache/ringcache/pkg/ring"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Store is the part of *blockstore.Store the server uses.
type Store interface {
	Get(ctx context.Context, k blockstore.Key, off, limit int64) ([]byte, blockstore.Meta, error)
	Put(ctx context.Context, k blockstore.Key, data []byte, m blockstore.Meta) error
	Has(k blockstore.Key) (int64, bool)
	Stats() blockstore.Stats
}

// Origin reads objects of one volume from its object store.
type Origin interface {
	Get(ctx context.Context, key string, off, limit int64) (io.ReadCloser, error)
}

// Volume is a JuiceFS volume the node serves.
type Volume struct {
	Name      string // operator-given name; requests may use it instead of the UUID
	UUID      string // the volume's UUID; the block store keys blocks by it
	Storage   string // origin storage type, for status
	BlockSize int64
	// ExactSize is true when objects are stored as plain bytes (no
	// compression, no encryption), so a block's length must equal the size
	// in its key and a short origin read is caught.
	ExactSize bool
	Origin    Origin
}

// ServerOptions configures a Server.
type ServerOptions struct {
	// Store holds the node's blocks. Required.
	Store Store
	// Volumes the node serves. At least one.
	Volumes []Volume
	// Token is the cluster token every call must carry. Required.
	Token []byte
	// View returns the node's current ring view, for Status. Optional.
	View func() *ring.View
	// OriginConcurrency bounds concurrent origin fetches on this node
	// (default 16). Fetches for reads go before fetches for Warm calls, and
	// Warm calls never hold more than WarmSlots(OriginConcurrency) of them:
	// see originSlots.
	OriginConcurrency int
	// OriginBandwidth caps origin bytes per second on this node (0: none).
	OriginBandwidth int64
	// FetchTimeout bounds one origin fetch, independent of the callers
	// waiting for it (default 2m).
	FetchTimeout time.Duration
	// ChunkSize is the size of streamed chunks (default 256 KiB).
	ChunkSize int
	// Logger receives structured logs (default: discard).
	Logger *slog.Logger
	// Registerer receives the server's metrics (default: none).
	Registerer prometheus.Registerer
	// Limits bound connections, calls and buffered answers (limits.go).
	Limits Limits
	// Clock is the clock of the refusal logs (default clock.Real()).
	Clock clock.Clock
}

// Validate fills defaults and checks o.
func (o *ServerOptions) Validate() error {
	if o.Store == nil {
		return errors.New("peer server: store is required")
	}
	if len(o.Volumes) == 0 {
		return errors.New("peer server: at least one volume is required")
	}
	if err := ValidateToken(o.Token); err != nil {
		return fmt.Errorf("peer server: %w", err)
	}
	seen := map[string]bool{}
	for _, v := range o.Volumes {
		if v.Name == "" || v.UUID == "" || v.Origin == nil {
			return fmt.Errorf("peer server: volume %q needs a name, a uuid and an origin", v.Name)
		}
		if seen[v.Name] || seen[v.UUID] {
			return fmt.Errorf("peer server: volume %q configured twice", v.Name)
		}
		seen[v.Name], seen[v.UUID] = true, true
	}
	if o.OriginConcurrency == 0 {
		o.OriginConcurrency = 16
	}
	if o.OriginConcurrency < 0 || o.OriginBandwidth < 0 || o.FetchTimeout < 0 || o.ChunkSize < 0 {
		return errors.New("peer server: origin concurrency, bandwidth, fetch timeout and chunk size must not be negative")
	}
	if o.FetchTimeout == 0 {
		o.FetchTimeout = 2 * time.Minute
	}
	if o.ChunkSize == 0 {
		o.ChunkSize = 256 << 10
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	o.Clock = clock.Or(o.Clock)
	return o.Limits.Validate()
}

// Stats are the server's counters since start.
type Stats struct {
	Reads         int64 // Read calls answered with data
	Hits          int64 // reads served from the store
	Misses        int64 // reads that needed the origin
	OriginFetches int64 // objects fetched from the origin
	OriginBytes   int64
	OriginErrors  int64
	DedupWaits    int64 // callers that joined a fetch already in flight
	ServedBytes   int64 // payload bytes sent (before s2)
	WireBytes     int64 // payload bytes sent (after s2)
	StoreErrors   int64 // failed stores after a fetch (block served anyway)
}

type counters struct {
	reads, hits, misses, originFetches, originBytes, originErrors,
	dedupWaits, servedBytes, wireBytes, storeErrors atomic.Int64
}

// Server implements the peer service.
type Server struct {
	peerpb.UnimplementedPeerServer

	o         ServerOptions
	log       *slog.Logger
	volumes   map[string]*Volume // by name and by UUID
	names     []string
	slots     *originSlots
	limiter   *rate.Limiter
	flights   flightGroup
	c         counters
	metrics   *serverMetrics
	refused   *refusals
	answers   *byteBudget
	dataConns *connLimit
	gate      *authGate
	batches   *callLimit
	originLog *refusals // rate-limits the origin-failure log
}

// NewServer returns a server for o.
func NewServer(o ServerOptions) (*Server, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	refused, err := newRefusals(o.Logger, o.Clock, o.Limits.RefusalLogInterval, o.Registerer)
	if err != nil {
		return nil, err
	}
	s := &Server{
		o:         o,
		log:       o.Logger,
		volumes:   make(map[string]*Volume),
		slots:     newOriginSlots(o.OriginConcurrency),
		refused:   refused,
		answers:   newByteBudget(o.Limits.MaxAnswerBytes, o.Limits.MaxAnswerBytes/answerShareDivisor),
		dataConns: newConnLimit(o.Limits.MaxDataConns, o.Limits.MaxDataConnsPerHost),
		gate:      newAuthGate(o.Limits.AuthTimeout, o.Limits.MaxPendingConnsPerHost),
		batches:   newCallLimit(o.Limits.MaxBatchCalls, o.Limits.MaxBatchCallsPerHost),
		originLog: newOriginLog(o.Logger, o.Clock, o.Limits.RefusalLogInterval),
	}
	for i := range o.Volumes {
		v := &o.Volumes[i]
		s.volumes[v.Name], s.volumes[v.UUID] = v, v
		s.names = append(s.names, v.Name)
	}
	sort.Strings(s.names)
	if o.OriginBandwidth > 0 {
		s.limiter = rate.NewLimiter(rate.Limit(o.OriginBandwidth), max(o.ChunkSize, 1<<20))
	}
	if o.Registerer != nil {
		m, err := newServerMetrics(o.Registerer, s)
		if err != nil {
			return nil, err
		}
		s.metrics = m
	}
	return s, nil
}

// GRPCServer returns a gRPC server with the peer service, authentication
// before any message is read, and transport settings that bound what one
// connection can make the server hold: default flow-control windows (a
// client cannot push more than 64 KiB per stream unasked), shared write
// buffers, at most MaxConcurrentStreams calls per connection, headers of
// at most maxHeaderListSize and messages of at most maxRecvMsgSize, a
// handshake of at most AuthTimeout, and idle connections closed after
// maxConnectionIdle. Connections accepted by Serve must also authenticate
// a call within AuthTimeout (authGate).
func (s *Server) GRPCServer() *grpc.Server {
	var opts []grpc.ServerOption
	if s.metrics != nil {
		opts = append(opts, s.metrics.interceptors()...)
	}
	opts = append(opts, serverAuth(s.o.Token, s.refused, s.gate.authenticated)...)
	opts = append(opts,
		grpc.SharedWriteBuffer(true),
		grpc.MaxRecvMsgSize(maxRecvMsgSize),
		grpc.ForceServerCodecV2(newCountingCodec()),
		grpc.MaxHeaderListSize(maxHeaderListSize),
		grpc.MaxConcurrentStreams(s.o.Limits.MaxConcurrentStreams),
		grpc.ConnectionTimeout(s.o.Limits.AuthTimeout),
		grpc.KeepaliveParams(keepalive.ServerParameters{MaxConnectionIdle: maxConnectionIdle}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 5 * time.Second, PermitWithoutStream: true}),
	)
	g := grpc.NewServer(opts...)
	peerpb.RegisterPeerServer(g, s)
	return g
}

// Serve serves the peer service on l until ctx is done, then stops
// gracefully (in-flight calls get up to grace to finish).
//
// The listener carries gRPC and, beside it, the data plane for block reads
// (dataplane.go), told apart by each connection's first bytes.
func (s *Server) Serve(ctx context.Context, l net.Listener, grace time.Duration) error {
	g := s.GRPCServer()
	dataCtx, stopData := context.WithCancel(context.WithoutCancel(ctx))
	defer stopData()
	sl := newSplitListener(s.limitListener(l), func(c net.Conn) { s.serveData(dataCtx, c) })
	errc := make(chan error, 1)
	go func() { errc <- g.Serve(sl) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sl.Close()
	t := time.AfterFunc(grace, func() { g.Stop(); stopData() })
	defer t.Stop()
	g.GracefulStop()
	return nil
}

// Stats returns a snapshot of the server's counters.
func (s *Server) Stats() Stats {
	return Stats{
		Reads: s.c.reads.Load(), Hits: s.c.hits.Load(), Misses: s.c.misses.Load(),
		OriginFetches: s.c.originFetches.Load(), OriginBytes: s.c.originBytes.Load(),
		OriginErrors: s.c.originErrors.Load(), DedupWaits: s.c.dedupWaits.Load(),
		ServedBytes: s.c.servedBytes.Load(), WireBytes: s.c.wireBytes.Load(),
		StoreErrors: s.c.storeErrors.Load(),
	}
}

// volume resolves a name or UUID.
func (s *Server) volume(id string) (*Volume, error) {
	if id == "" {
		return nil, status.Error(codes.InvalidArgument, "volume is required")
	}
	v, ok := s.volumes[id]
	if !ok {
		return nil, status.Errorf(codes.NotFound, "unknown volume %q (this node serves: %s)", id, strings.Join(s.names, ", "))
	}
	return v, nil
}

// maxConnectionIdle is how long a gRPC connection without calls stays
// open; clients reconnect on their next call.
const maxConnectionIdle = 2 * time.Minute

// maxKeyLen bounds a block key: the longest canonical one
// (chunks/{id/1e6}/{id/1e3}/{id}_{index}_{size} with a 20-digit id, a
// 19-digit index and an 8-digit size) is 91 bytes.
const maxKeyLen = 128

func validateKey(key string) error {
	if len(key) > maxKeyLen {
		return status.Errorf(codes.InvalidArgument, "key: longer than %d bytes", maxKeyLen)
	}
	if _, err := blockkey.Parse(key); err != nil {
		return status.Errorf(codes.InvalidArgument, "key: %v", err)
	}
	return nil
}

// Read implements peerpb.PeerServer.
func (s *Server) Read(req *peerpb.ReadRequest, stream grpc.ServerStreamingServer[peerpb.ReadChunk]) error {
	ctx := stream.Context()
	if err := validateKey(req.Key); err != nil {
		return err
	}
	if err := checkRange(req.Offset, req.Limit); err != nil {
		return err
	}
	if dl, _ := ctx.Deadline(); time.Until(dl) > s.o.Limits.MaxCallTimeout {
		// A blocked Send waits for the call's deadline: bound it.
		return status.Errorf(codes.InvalidArgument, "deadline more than %v away", s.o.Limits.MaxCallTimeout)
	}
	v, err := s.volume(req.Volume)
	if err != nil {
		return err
	}
	data, meta, src, release, err := s.get(ctx, v, req.Key, req.Offset, req.Limit)
	if err != nil {
		return err
	}
	defer release()
	s.c.reads.Add(1)
	return s.send(stream, data, meta.ObjectSize, src, req.AcceptS2 && meta.Compressible)
}

type blockInfo struct {
	Compressible bool
	ObjectSize   int64
}

// get returns bytes [off, off+limit) of the block, from the store or, on a
// miss, from the origin through the single flight, and the function that
// gives back the answer budget (Limits.MaxAnswerBytes) they hold; the
// caller calls it once the bytes are sent. Both a hit and a miss take
// their budget before the block is read (from the store or the origin),
// one remote host at most its share of it (byteBudget).
func (s *Server) get(ctx context.Context, v *Volume, key string, off, limit int64) ([]byte, blockInfo, peerpb.Source, func(), error) {
	k := blockstore.Key{Volume: v.UUID, Object: key}
	// The budget first, for a hit and a miss alike: bytes loaded or
	// fetched for this read are counted while they wait to be sent (what
	// the key's size says, which bounds the object, readOrigin). Checking
	// the store only after the wait means a reader that waited while
	// another fetched this block serves the stored copy instead of
	// fetching it again.
	release, err := s.answers.acquire(ctx, answerWeight(key, off, limit))
	if err != nil {
		return nil, blockInfo{}, 0, nil, status.FromContextError(err).Err()
	}
	if data, info, ok, err := s.fromStore(ctx, v, k, off, limit); ok || err != nil {
		if err != nil {
			release()
			return nil, blockInfo{}, 0, nil, err
		}
		return data, info, peerpb.Source_SOURCE_STORE, release, nil
	}
	s.c.misses.Add(1)
	f, err := s.fetch(ctx, v, key, classRead)
	if err != nil {
		release()
		return nil, blockInfo{}, 0, nil, err
	}
	size := int64(len(f.data))
	start, end, err := blockstore.Range(off, limit, size)
	if err != nil {
		release()
		return nil, blockInfo{}, 0, nil, rangeStatus(err, off, size)
	}
	return f.data[start:end], blockInfo{Compressible: f.compressible, ObjectSize: size}, peerpb.Source_SOURCE_ORIGIN, release, nil
}

// fromStore reads a range of k from the store. ok reports a hit; err is a
// status error for a read that must not go on to the origin (a bad range,
// the caller gone). A block that is absent, corrupt (dropped by the store)
// or unreadable is neither: the caller fetches it.
func (s *Server) fromStore(ctx context.Context, v *Volume, k blockstore.Key, off, limit int64) ([]byte, blockInfo, bool, error) {
	size, ok := s.o.Store.Has(k)
	if !ok {
		return nil, blockInfo{}, false, nil
	}
	data, m, err := s.o.Store.Get(ctx, k, off, limit)
	switch {
	case err == nil:
		s.c.hits.Add(1)
		return data, blockInfo{Compressible: m.Compressible, ObjectSize: size}, true, nil
	case errors.Is(err, blockstore.ErrRange), errors.Is(err, blockstore.ErrInvalidRange):
		return nil, blockInfo{}, false, rangeStatus(err, off, size)
	case errors.Is(err, blockstore.ErrCorrupt):
		s.log.Warn("corrupt block dropped, refetching", "volume", v.Name, "key", k.Object)
	case ctx.Err() != nil:
		return nil, blockInfo{}, false, status.FromContextError(ctx.Err()).Err()
	default:
		s.log.Warn("store read failed, treating as miss", "volume", v.Name, "key", k.Object, "err", err)
	}
	return nil, blockInfo{}, false, nil
}

type fetched struct {
	data         []byte
	compressible bool
}

// fetch returns the whole object from the origin, once for all concurrent
// callers, and stores it. class is the caller's: a read waiting on a fetch
// a Warm call started lifts that fetch to read priority.
func (s *Server) fetch(ctx context.Context, v *Volume, key string, class slotClass) (fetched, error) {
	fkey := v.UUID + "/" + key
	if class == classRead {
		s.slots.readWaiting(fkey)
		defer s.slots.readDone(fkey)
	}
	f, shared, err := s.flights.do(ctx, fkey, func() (fetched, error) {
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.o.FetchTimeout)
		defer cancel()
		return s.fetchOrigin(fctx, v, key, fkey, class)
	})
	if shared {
		s.c.dedupWaits.Add(1)
	}
	if err != nil {
		if ctx.Err() != nil {
			return fetched{}, status.FromContextError(ctx.Err()).Err()
		}
		return fetched{}, status.Errorf(codes.Unavailable, "fetch %s from origin of volume %q: %v", key, v.Name, err)
	}
	return f, nil
}

func (s *Server) fetchOrigin(ctx context.Context, v *Volume, key, fkey string, class slotClass) (fetched, error) {
	release, err := s.slots.acquire(ctx, fkey, class)
	if err != nil {
		return fetched{}, err
	}
	defer release()

	start := time.Now()
	s.c.originFetches.Add(1)
	data, err := s.readOrigin(ctx, v, key)
	if s.metrics != nil {
		s.metrics.fetchSeconds.Observe(time.Since(start).Seconds())
	}
	if err != nil {
		s.c.originErrors.Add(1)
		s.originLog.refuse(v.Name, nil, key+": "+err.Error())
		return fetched{}, err
	}
	f := fetched{data: data, compressible: compressible(data)}
	if err := s.o.Store.Put(ctx, blockstore.Key{Volume: v.UUID, Object: key}, data, blockstore.Meta{Compressible: f.compressible}); err != nil {
		s.c.storeErrors.Add(1)
		s.log.Warn("storing fetched block failed, served without caching", "volume", v.Name, "key", key, "err", err)
	}
	return f, nil
}

func (s *Server) readOrigin(ctx context.Context, v *Volume, key string) ([]byte, error) {
	bk, _ := blockkey.Parse(key) // validated by the caller
	rc, err := v.Origin.Get(ctx, key, 0, -1)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	buf := bytes.NewBuffer(make([]byte, 0, bk.Size+64))
	chunk := make([]byte, min(s.o.ChunkSize, 1<<20))
	for {
		n, err := rc.Read(chunk)
		if n > 0 {
			if s.limiter != nil {
				if werr := s.limiter.WaitN(ctx, n); werr != nil {
					return nil, werr
				}
			}
			buf.Write(chunk[:n])
			s.c.originBytes.Add(int64(n))
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

// send streams data in chunks, the header on the first and the checksum on
// the last; a chunk the reader does not take within MaxWriteTimeout ends
// the call (progressGuard).
func (s *Server) send(stream grpc.ServerStreamingServer[peerpb.ReadChunk], data []byte, objectSize int64, src peerpb.Source, useS2 bool) error {
	sum := crc32.Checksum(data, castagnoli)
	guard := newProgressGuard(stream, s.o.Limits.MaxWriteTimeout)
	defer guard.stop(stream.Context(), nil)
	var enc []byte
	first := true
	for off := 0; first || off < len(data); {
		end := min(off+s.o.ChunkSize, len(data))
		c := &peerpb.ReadChunk{Data: data[off:end]}
		if useS2 && end > off {
			enc = s2.Encode(enc[:cap(enc)], c.Data)
			if len(enc) < len(c.Data)*7/8 {
				c.Data, c.S2 = enc, true
			}
		}
		if first {
			c.ObjectSize, c.Length, c.Source = objectSize, int64(len(data)), src
			first = false
		}
		if end == len(data) {
			c.Last, c.Crc32C = true, sum
		}
		guard.arm()
		if err := stream.Send(c); err != nil {
			return guard.stop(stream.Context(), err)
		}
		s.c.wireBytes.Add(int64(len(c.Data)))
		off = end
	}
	s.c.servedBytes.Add(int64(len(data)))
	return nil
}

// maxBatch bounds the keys of one Warm or Has call.
const maxBatch = 4096

// batch checks a Has or Warm call and takes its place among the batch
// calls (Limits.MaxBatchCalls); the caller calls release when done.
func (s *Server) batch(ctx context.Context, volume string, keys []string) (v *Volume, release func(), err error) {
	if len(keys) == 0 || len(keys) > maxBatch {
		return nil, nil, status.Errorf(codes.InvalidArgument, "want 1 to %d keys, got %d", maxBatch, len(keys))
	}
	for _, k := range keys {
		if err := validateKey(k); err != nil {
			return nil, nil, err
		}
	}
	if v, err = s.volume(volume); err != nil {
		return nil, nil, err
	}
	if release, err = s.batches.acquire(ctx, callerHost(ctx)); err != nil {
		return nil, nil, err
	}
	return v, release, nil
}

// Warm implements peerpb.PeerServer. Keys are fetched concurrently, bounded
// by the origin slots warms may hold (WarmSlots), at a lower priority than
// reads.
func (s *Server) Warm(ctx context.Context, req *peerpb.WarmRequest) (*peerpb.WarmResponse, error) {
	v, release, err := s.batch(ctx, req.Volume, req.Keys)
	if err != nil {
		return nil, err
	}
	defer release()
	res := make([]*peerpb.WarmResult, len(req.Keys))
	work := make(chan int)
	done := make(chan struct{})
	workers := min(len(req.Keys), s.slots.maxWarm)
	for range workers {
		go func() {
			defer func() { done <- struct{}{} }()
			for i := range work {
				res[i] = s.warmOne(ctx, v, req.Keys[i])
			}
		}()
	}
	for i := range req.Keys {
		work <- i
	}
	close(work)
	for range workers {
		<-done
	}
	return &peerpb.WarmResponse{Results: res}, nil
}

func (s *Server) warmOne(ctx context.Context, v *Volume, key string) *peerpb.WarmResult {
	r := &peerpb.WarmResult{Key: key}
	if size, ok := s.o.Store.Has(blockstore.Key{Volume: v.UUID, Object: key}); ok {
		r.State, r.Size = peerpb.WarmResult_STATE_CACHED, size
		return r
	}
	f, err := s.fetch(ctx, v, key, classWarm)
	if err != nil {
		r.State, r.Error = peerpb.WarmResult_STATE_FAILED, status.Convert(err).Message()
		return r
	}
	r.State, r.Size = peerpb.WarmResult_STATE_FETCHED, int64(len(f.data))
	return r
}

// Has implements peerpb.PeerServer.
func (s *Server) Has(ctx context.Context, req *peerpb.HasRequest) (*peerpb.HasResponse, error) {
	v, release, err := s.batch(ctx, req.Volume, req.Keys)
	if err != nil {
		return nil, err
	}
	defer release()
	sizes := make([]int64, len(req.Keys))
	for i, k := range req.Keys {
		sizes[i] = -1
		if n, ok := s.o.Store.Has(blockstore.Key{Volume: v.UUID, Object: k}); ok {
			sizes[i] = n
		}
	}
	return &peerpb.HasResponse{Sizes: sizes}, nil
}

// Status implements peerpb.PeerServer.
func (s *Server) Status(ctx context.Context, _ *peerpb.StatusRequest) (*peerpb.StatusResponse, error) {
	st, ss := s.o.Store.Stats(), s.Stats()
	r := &peerpb.StatusResponse{
		StoreBlocks: st.Blocks, StoreBytes: st.Bytes, StoreCapacityBytes: st.CapacityBytes,
		Hits: ss.Hits, Misses: ss.Misses, OriginFetches: ss.OriginFetches, OriginBytes: ss.OriginBytes,
		DedupWaits: ss.DedupWaits, CorruptBlocks: st.Corrupt,
	}
	for _, n := range s.names {
		v := s.volumes[n]
		r.Volumes = append(r.Volumes, &peerpb.VolumeInfo{Name: v.Name, Uuid: v.UUID, Storage: v.Storage, BlockSize: v.BlockSize})
	}
	if s.o.View != nil {
		if view := s.o.View(); view != nil {
			r.NodeId, r.Addr, r.RingEpoch = view.Self.ID, view.Self.Addr, view.Epoch
			p := view.Placement
			shares := p.Shares()
			for _, m := range p.Members() {
				r.Members = append(r.Members, &peerpb.Member{Id: m.ID, Addr: m.Addr, Weight: int32(m.Weight), PlacementVersion: int32(m.PlacementVersion), Share: shares[m.ID]})
			}
			r.PartitionCount, r.Load = int32(p.Config().PartitionCount), p.Config().Load
		}
	}
	slices.SortFunc(r.Members, func(a, b *peerpb.Member) int { return strings.Compare(a.Id, b.Id) })
	return r, nil
}

// slotClass is the priority class of an origin fetch.
type slotClass uint8

const (
	classRead slotClass = iota // a Read is waiting on the fetch
	classWarm                  // only a Warm call is
)

// WarmSlots is how many of a node's originConcurrency origin slots fetches
// for Warm calls may hold at once: all but a quarter of them (at least one
// is kept for reads when there are two or more).
func WarmSlots(originConcurrency int) int {
	reserve := originConcurrency / 4
	if reserve == 0 && originConcurrency >= 2 {
		reserve = 1
	}
	return max(originConcurrency-reserve, 1)
}

// originSlots hands out a node's origin fetch slots so that warm-ups never
// starve reads:
//
//   - a freed slot goes to the longest-waiting read fetch, and only when no
//     read waits to the longest-waiting warm fetch (FIFO within a class, so
//     concurrent Warm calls share the warm slots in proportion to their
//     waiting fetches);
//   - warm fetches never hold more than maxWarm slots (WarmSlots), so while
//     any number of warm-ups run, a read finds a free slot unless other
//     reads hold the reserve, and never queues behind a warm fetch;
//   - a warm fetch that a read joins (single flight) is promoted: it waits
//     as a read from then on.
type originSlots struct {
	mu      sync.Mutex
	free    int // slots not held
	warm    int // slots held by warm fetches
	maxWarm int
	reads   []*slotWaiter  // FIFO
	warms   []*slotWaiter  // FIFO
	readers map[string]int // fetch key -> reads waiting on that fetch
	waiting map[string]*slotWaiter
}

type slotWaiter struct {
	key     string
	class   slotClass
	granted bool
	ready   chan struct{} // closed when granted
}

func newOriginSlots(n int) *originSlots {
	return &originSlots{free: n, maxWarm: WarmSlots(n), readers: map[string]int{}, waiting: map[string]*slotWaiter{}}
}

// acquire waits for a slot for the fetch of key in class and returns the
// function that gives it back.
func (o *originSlots) acquire(ctx context.Context, key string, class slotClass) (func(), error) {
	w := &slotWaiter{key: key, class: class, ready: make(chan struct{})}
	o.mu.Lock()
	if class == classWarm && o.readers[key] > 0 {
		w.class = classRead
	}
	if w.class == classRead {
		o.reads = append(o.reads, w)
	} else {
		o.warms = append(o.warms, w)
		o.waiting[key] = w
	}
	o.dispatch()
	o.mu.Unlock()
	select {
	case <-w.ready:
	case <-ctx.Done():
		o.mu.Lock()
		if !w.granted {
			o.remove(w)
			o.mu.Unlock()
			return nil, ctx.Err()
		}
		o.mu.Unlock() // granted meanwhile: use it
	}
	granted := w.class // fixed once granted
	return func() {
		o.mu.Lock()
		o.free++
		if granted == classWarm {
			o.warm--
		}
		o.dispatch()
		o.mu.Unlock()
	}, nil
}

// dispatch grants free slots to waiters, reads first. o.mu is held.
func (o *originSlots) dispatch() {
	for o.free > 0 {
		var w *slotWaiter
		switch {
		case len(o.reads) > 0:
			w, o.reads = o.reads[0], o.reads[1:]
		case len(o.warms) > 0 && o.warm < o.maxWarm:
			w, o.warms = o.warms[0], o.warms[1:]
			delete(o.waiting, w.key)
			o.warm++
		default:
			return
		}
		o.free--
		w.granted = true
		close(w.ready)
	}
}

// remove drops a waiter that gave up. o.mu is held.
func (o *originSlots) remove(w *slotWaiter) {
	if w.class == classRead {
		o.reads = slices.DeleteFunc(o.reads, func(x *slotWaiter) bool { return x == w })
		return
	}
	o.warms = slices.DeleteFunc(o.warms, func(x *slotWaiter) bool { return x == w })
	if o.waiting[w.key] == w {
		delete(o.waiting, w.key)
	}
}

// readWaiting records a read about to wait on the fetch of key, promoting
// a warm fetch of key that waits for a slot.
func (o *originSlots) readWaiting(key string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.readers[key]++
	if w := o.waiting[key]; w != nil {
		o.remove(w)
		w.class = classRead
		o.reads = append(o.reads, w)
		o.dispatch()
	}
}

// readDone undoes readWaiting.
func (o *originSlots) readDone(key string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.readers[key]--; o.readers[key] <= 0 {
		delete(o.readers, key)
	}
}
