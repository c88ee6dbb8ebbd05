package peer

import (
	"context"
	"path"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/status"
)

// serverMetrics exports the server's counters. Counters are read from the
// server's own atomics at scrape time, so Stats and /metrics never disagree.
// The cache registers its own (pkg/cache).
type serverMetrics struct {
	requests *prometheus.CounterVec
}

// interceptors count every call by method and status code, refused ones
// included.
func (m *serverMetrics) interceptors() []grpc.ServerOption {
	count := func(fullMethod string, err error) {
		m.requests.WithLabelValues(path.Base(fullMethod), status.Code(err).String()).Inc()
	}
	return []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			resp, err := h(ctx, req)
			count(info.FullMethod, err)
			return resp, err
		}),
		grpc.ChainStreamInterceptor(func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
			err := h(srv, ss)
			count(info.FullMethod, err)
			return err
		}),
	}
}

func newServerMetrics(reg prometheus.Registerer, s *Server) (*serverMetrics, error) {
	m := &serverMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ringcache_peer_requests_total",
			Help: "Peer protocol calls by method and gRPC status code.",
		}, []string{"method", "code"}),
	}
	counter := func(name, help string, f func() int64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, func() float64 { return float64(f()) })
	}
	cs := []prometheus.Collector{
		m.requests,
		counter("ringcache_reads_total", "Read calls answered with data.", s.c.reads.Load),
		counter("ringcache_served_bytes_total", "Block bytes served to readers, before wire compression.", s.c.servedBytes.Load),
		counter("ringcache_wire_bytes_total", "Block bytes sent on the wire, after s2 compression where it helps.", s.c.wireBytes.Load),
	}
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}
