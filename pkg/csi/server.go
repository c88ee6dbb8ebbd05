package csi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Listen opens a CSI endpoint: unix:///path/csi.sock (also unix:/path or
// a bare absolute path) or tcp://host:port. A stale unix socket file is
// removed first; anything else at that path is an error.
func Listen(endpoint string) (net.Listener, error) {
	var path string
	switch {
	case strings.HasPrefix(endpoint, "unix://"):
		path = strings.TrimPrefix(endpoint, "unix://")
	case strings.HasPrefix(endpoint, "unix:"):
		path = strings.TrimPrefix(endpoint, "unix:")
	case strings.HasPrefix(endpoint, "/"):
		path = endpoint
	case strings.HasPrefix(endpoint, "tcp://"):
		return net.Listen("tcp", strings.TrimPrefix(endpoint, "tcp://"))
	default:
		return nil, fmt.Errorf("endpoint %q: want unix:///path or tcp://host:port", endpoint)
	}
	if !filepath.IsAbs(path) {
		return nil, fmt.Errorf("endpoint %q: the socket path must be absolute", endpoint)
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("endpoint %q: %s exists and is not a socket", endpoint, path)
		}
		if err := os.Remove(path); err != nil {
			return nil, err
		}
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, err
	}
	return net.Listen("unix", path)
}

// NewServer returns a gRPC server whose interceptor logs each call's
// method, status code and duration (never its request: requests carry
// secrets) and turns a panic into Internal.
func NewServer(log *slog.Logger) *grpc.Server {
	if log == nil {
		log = discardLogger()
	}
	return grpc.NewServer(grpc.ChainUnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
		start := time.Now()
		defer func() {
			if p := recover(); p != nil {
				log.Error("panic in handler", "method", info.FullMethod, "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
				resp, err = nil, status.Error(codes.Internal, "internal error")
			}
			code := status.Code(err)
			level := slog.LevelDebug
			switch {
			case code == codes.OK && isMutating(info.FullMethod):
				level = slog.LevelInfo
			case code != codes.OK:
				level = slog.LevelWarn
			}
			attrs := []any{"method", info.FullMethod, "code", code.String(), "took", time.Since(start).Round(time.Microsecond).String()}
			if err != nil {
				attrs = append(attrs, "error", status.Convert(err).Message())
			}
			log.Log(ctx, level, "csi call", attrs...)
		}()
		return handler(ctx, req)
	}))
}

func isMutating(method string) bool {
	for _, m := range []string{"CreateVolume", "DeleteVolume", "NodePublishVolume", "NodeUnpublishVolume"} {
		if strings.HasSuffix(method, "/"+m) {
			return true
		}
	}
	return false
}

// Serve serves s on l until ctx is done, then stops it gracefully (at most
// 10 s).
func Serve(ctx context.Context, s *grpc.Server, l net.Listener) error {
	errc := make(chan error, 1)
	go func() { errc <- s.Serve(l) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	done := make(chan struct{})
	go func() { s.GracefulStop(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second): // a fixed safety bound of the shutdown path: real time
		s.Stop()
	}
	if err := <-errc; err != nil && !errors.Is(err, grpc.ErrServerStopped) {
		return err
	}
	return nil
}
