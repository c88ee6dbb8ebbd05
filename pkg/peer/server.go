package peer

import (
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"log/slog"
	"net"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/klauspost/compress/s2"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"

	"github.com/ringcache/ringcache/pkg/clock"
	"github.com/ringcache/ringcache/pkg/peer/peerpb"
	"github.com/ringcache/ringcache/pkg/ring"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// DefaultChunkSize is the default size of the chunks a gRPC Read streams.
const DefaultChunkSize = 256 << 10

// ServerOptions configures a Server.
type ServerOptions struct {
	// Cache answers the requests the server has checked. Required.
	Cache Cache
	// Token is the cluster token every call must carry. Required.
	Token []byte
	// View returns the node's current ring view, for Status. Optional
	// (default: Status reports no ring).
	View func() *ring.View
	// ChunkSize is the size of the chunks a gRPC Read streams (default
	// DefaultChunkSize).
	ChunkSize int
	// Logger receives structured logs (default: discard).
	Logger *slog.Logger
	// Registerer receives the server's metrics (default: none).
	Registerer prometheus.Registerer
	// Limits bound connections, calls and buffered answers (limits.go;
	// zero fields take their defaults).
	Limits Limits
	// Clock times the refusal log, the authentication deadline of new
	// connections and the progress of gRPC sends (default clock.Real()).
	Clock clock.Clock
}

// EnsureDefaults sets every zero-valued optional field to its default.
func (o *ServerOptions) EnsureDefaults() {
	if o.ChunkSize == 0 {
		o.ChunkSize = DefaultChunkSize
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	o.Clock = clock.Or(o.Clock)
	o.Limits.EnsureDefaults()
}

// Validate checks o (after EnsureDefaults).
func (o *ServerOptions) Validate() error {
	var errs []error
	if o.Cache == nil {
		errs = append(errs, errors.New("peer server: cache is required"))
	}
	if err := ValidateToken(o.Token); err != nil {
		errs = append(errs, fmt.Errorf("peer server: %w", err))
	}
	if o.ChunkSize < 0 {
		errs = append(errs, errors.New("peer server: chunk size must not be negative"))
	}
	if err := o.Limits.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("peer: invalid options: %w", err)
	}
	return nil
}

// Stats are the server's counters since start; the cache keeps its own.
type Stats struct {
	Reads       int64 // Read calls answered with data
	ServedBytes int64 // payload bytes sent (before s2)
	WireBytes   int64 // payload bytes sent (after s2)
}

type counters struct {
	reads, servedBytes, wireBytes atomic.Int64
}

// Server implements the peer service over a Cache.
type Server struct {
	peerpb.UnimplementedPeerServer

	o         ServerOptions
	log       *slog.Logger
	cache     Cache
	volumes   map[string]Volume // by name and by UUID
	names     []string
	c         counters
	metrics   *serverMetrics
	refused   *refusals
	answers   *byteBudget
	dataConns *connLimit
	gate      *authGate
	batches   *callLimit
}

// NewServer returns a server for o.
func NewServer(o ServerOptions) (*Server, error) {
	o.EnsureDefaults()
	if err := o.Validate(); err != nil {
		return nil, err
	}
	refused, err := newRefusals(o.Logger, o.Clock, o.Limits.RefusalLogInterval, o.Registerer)
	if err != nil {
		return nil, err
	}
	vols := o.Cache.Volumes()
	if len(vols) == 0 {
		return nil, errors.New("peer server: at least one volume is required")
	}
	s := &Server{
		o:         o,
		log:       o.Logger,
		cache:     o.Cache,
		volumes:   make(map[string]Volume),
		refused:   refused,
		answers:   newByteBudget(o.Limits.MaxAnswerBytes, o.Limits.MaxAnswerBytes/answerShareDivisor),
		dataConns: newConnLimit(o.Limits.MaxDataConns, o.Limits.MaxDataConnsPerHost),
		gate:      newAuthGate(o.Clock, o.Limits.AuthTimeout, o.Limits.MaxPendingConnsPerHost),
		batches:   newCallLimit(o.Limits.MaxBatchCalls, o.Limits.MaxBatchCallsPerHost),
	}
	for _, v := range vols {
		s.volumes[v.Name], s.volumes[v.UUID] = v, v
		s.names = append(s.names, v.Name)
	}
	sort.Strings(s.names)
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
	// A fixed safety bound of the shutdown path, in real time.
	t := time.AfterFunc(grace, func() { g.Stop(); stopData() })
	defer t.Stop()
	g.GracefulStop()
	return nil
}

// Stats returns a snapshot of the server's counters.
func (s *Server) Stats() Stats {
	return Stats{Reads: s.c.reads.Load(), ServedBytes: s.c.servedBytes.Load(), WireBytes: s.c.wireBytes.Load()}
}

// maxConnectionIdle is how long a gRPC connection without calls stays
// open; clients reconnect on their next call.
const maxConnectionIdle = 2 * time.Minute

// Read implements peerpb.PeerServer.
func (s *Server) Read(req *peerpb.ReadRequest, stream grpc.ServerStreamingServer[peerpb.ReadChunk]) error {
	ctx := stream.Context()
	if err := checkBlockRange(req.Key, req.Offset, req.Limit); err != nil {
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
	data, info, release, err := s.read(ctx, v, req.Key, req.Offset, req.Limit)
	if err != nil {
		return err
	}
	defer release()
	s.c.reads.Add(1)
	return s.send(stream, data, info.ObjectSize, info.Source, req.AcceptS2 && info.Compressible)
}

// read returns bytes [off, off+limit) of the block from the cache, and
// the function that gives back the answer budget (Limits.MaxAnswerBytes)
// they hold; the caller calls it once the bytes are sent. The budget is
// taken before the cache loads the block (from its store or its origin),
// for a hit and a miss alike, one remote host at most its share of it
// (byteBudget): bytes loaded or fetched for this read are counted while
// they wait to be sent (what the key's size says, which bounds the
// object). The cache looks at its store only after the wait, so a reader
// that waited while another fetched this block serves the stored copy.
func (s *Server) read(ctx context.Context, v Volume, key string, off, limit int64) ([]byte, BlockInfo, func(), error) {
	release, err := s.answers.acquire(ctx, answerWeight(key, off, limit))
	if err != nil {
		return nil, BlockInfo{}, nil, status.FromContextError(err).Err()
	}
	data, info, err := s.cache.Read(ctx, v, key, off, limit)
	if err != nil {
		release()
		return nil, BlockInfo{}, nil, err
	}
	return data, info, release, nil
}

// send streams data in chunks, the header on the first and the checksum on
// the last; a chunk the reader does not take within MaxWriteTimeout ends
// the call (progressGuard).
func (s *Server) send(stream grpc.ServerStreamingServer[peerpb.ReadChunk], data []byte, objectSize int64, src peerpb.Source, useS2 bool) error {
	sum := crc32.Checksum(data, castagnoli)
	guard := newProgressGuard(s.o.Clock, stream, s.o.Limits.MaxWriteTimeout)
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

// batch checks a Has or Warm call and takes its place among the batch
// calls (Limits.MaxBatchCalls); the caller calls release when done.
func (s *Server) batch(ctx context.Context, volume string, keys []string) (v Volume, release func(), err error) {
	if v, err = s.checkBatch(volume, keys); err != nil {
		return Volume{}, nil, err
	}
	if release, err = s.batches.acquire(ctx, callerHost(ctx)); err != nil {
		return Volume{}, nil, err
	}
	return v, release, nil
}

// Warm implements peerpb.PeerServer. The cache fetches the missing keys
// at a lower priority than reads.
func (s *Server) Warm(ctx context.Context, req *peerpb.WarmRequest) (*peerpb.WarmResponse, error) {
	v, release, err := s.batch(ctx, req.Volume, req.Keys)
	if err != nil {
		return nil, err
	}
	defer release()
	return &peerpb.WarmResponse{Results: s.cache.Warm(ctx, v, req.Keys)}, nil
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
		if n, ok := s.cache.Has(v, k); ok {
			sizes[i] = n
		}
	}
	return &peerpb.HasResponse{Sizes: sizes}, nil
}

// Status implements peerpb.PeerServer.
func (s *Server) Status(ctx context.Context, _ *peerpb.StatusRequest) (*peerpb.StatusResponse, error) {
	cs := s.cache.Status()
	r := &peerpb.StatusResponse{
		StoreBlocks: cs.StoreBlocks, StoreBytes: cs.StoreBytes, StoreCapacityBytes: cs.StoreCapacityBytes,
		Hits: cs.Hits, Misses: cs.Misses, OriginFetches: cs.OriginFetches, OriginBytes: cs.OriginBytes,
		DedupWaits: cs.DedupWaits, CorruptBlocks: cs.CorruptBlocks,
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
