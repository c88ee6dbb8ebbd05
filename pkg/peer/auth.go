package peer

import (
	"bytes"
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"os"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// MinTokenLen is the shortest cluster token accepted.
const MinTokenLen = 16

// ErrBadToken is returned for a cluster token that is too short or holds
// characters that cannot travel in gRPC metadata.
var ErrBadToken = errors.New("invalid cluster token")

const authHeader = "authorization"

// LoadToken reads the cluster token from path. Surrounding whitespace (a
// trailing newline from `echo`) is dropped.
func LoadToken(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read cluster token: %w", err)
	}
	tok := bytes.TrimSpace(b)
	if err := ValidateToken(tok); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return tok, nil
}

// ValidateToken checks a token's length and alphabet (printable ASCII
// without spaces).
func ValidateToken(tok []byte) error {
	if len(tok) < MinTokenLen {
		return fmt.Errorf("%w: shorter than %d bytes", ErrBadToken, MinTokenLen)
	}
	for _, c := range tok {
		if c <= ' ' || c > '~' {
			return fmt.Errorf("%w: holds a character outside printable ASCII", ErrBadToken)
		}
	}
	return nil
}

// tokenCreds sends the cluster token with every call.
type tokenCreds struct{ header string }

func (t tokenCreds) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{authHeader: t.header}, nil
}

// RequireTransportSecurity is false: peers talk plain gRPC inside the
// cluster network (the chart's NetworkPolicy admits only ringcache pods).
func (tokenCreds) RequireTransportSecurity() bool { return false }

// TokenCredentials returns per-call credentials carrying tok.
func TokenCredentials(tok []byte) credentials.PerRPCCredentials {
	return tokenCreds{header: "Bearer " + string(tok)}
}

// authenticator checks the token and the deadline of every call.
type authenticator struct{ want []byte }

func (a authenticator) check(ctx context.Context) error {
	md, _ := metadata.FromIncomingContext(ctx)
	var got string
	if v := md.Get(authHeader); len(v) == 1 {
		got, _ = strings.CutPrefix(v[0], "Bearer ")
	}
	if got == "" || subtle.ConstantTimeCompare([]byte(got), a.want) != 1 {
		return status.Error(codes.Unauthenticated, "missing or wrong cluster token")
	}
	if _, ok := ctx.Deadline(); !ok {
		return status.Error(codes.InvalidArgument, "call has no deadline")
	}
	return nil
}

// serverAuth returns interceptors that refuse calls without the cluster
// token (Unauthenticated) or without a deadline (InvalidArgument) before
// any handler runs.
func serverAuth(tok []byte) []grpc.ServerOption {
	a := authenticator{want: bytes.Clone(tok)}
	return []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			if err := a.check(ctx); err != nil {
				return nil, err
			}
			return h(ctx, req)
		}),
		grpc.ChainStreamInterceptor(func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
			if err := a.check(ss.Context()); err != nil {
				return err
			}
			return h(srv, ss)
		}),
	}
}
