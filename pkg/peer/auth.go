package peer

import (
	"bytes"
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	grpcpeer "google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/tap"
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
type authenticator struct {
	want   []byte
	ref    *refusals
	onAuth func(net.Addr) // told of every call with the token (authGate)
}

// tokenReason returns "" for md carrying the cluster token as
// "authorization: Bearer <token>", else the reason to refuse the call. It
// is cheap (one token-sized copy, a constant-time compare): it runs on a
// connection's reader goroutine, before any message of the call is read.
func (a authenticator) tokenReason(md metadata.MD) string {
	v := md[authHeader]
	if len(v) == 0 || v[0] == "" {
		return reasonNoToken
	}
	if len(v) != 1 {
		return reasonBadToken
	}
	got, ok := strings.CutPrefix(v[0], "Bearer ")
	switch {
	case !ok:
		return reasonNoBearer
	case got == "":
		return reasonNoToken
	case subtle.ConstantTimeCompare([]byte(got), a.want) != 1:
		return reasonBadToken
	}
	return ""
}

var errUnauthenticated = status.Error(codes.Unauthenticated, "missing or wrong cluster token (want authorization: Bearer <token>)")

// tap refuses a call without the cluster token as soon as its headers
// arrive, before gRPC reads or decodes any of its messages.
func (a authenticator) tap(ctx context.Context, info *tap.Info) (context.Context, error) {
	if reason := a.tokenReason(info.Header); reason != "" {
		a.refuse(ctx, reason, info.FullMethodName)
		return ctx, errUnauthenticated
	}
	if p, ok := grpcpeer.FromContext(ctx); ok && a.onAuth != nil {
		a.onAuth(p.Addr)
	}
	return cancelableStream(ctx), nil
}

func (a authenticator) refuse(ctx context.Context, reason, method string) {
	var addr net.Addr
	if p, ok := grpcpeer.FromContext(ctx); ok {
		addr = p.Addr
	}
	a.ref.refuse(reason, addr, method)
}

// check repeats the token check behind the tap (a server built without
// it stays closed) and refuses calls without a deadline.
func (a authenticator) check(ctx context.Context, method string) error {
	md, _ := metadata.FromIncomingContext(ctx)
	if reason := a.tokenReason(md); reason != "" {
		a.refuse(ctx, reason, method)
		return errUnauthenticated
	}
	if _, ok := ctx.Deadline(); !ok {
		a.refuse(ctx, reasonNoDeadline, method)
		return status.Error(codes.InvalidArgument, "call has no deadline")
	}
	return nil
}

// serverAuth returns the tap handle and interceptors that refuse calls
// without the cluster token (Unauthenticated) or without a deadline
// (InvalidArgument) before any handler runs, and calls without the token
// before any message is read.
// onAuth is told the remote address of every call with the token.
func serverAuth(tok []byte, ref *refusals, onAuth func(net.Addr)) []grpc.ServerOption {
	a := authenticator{want: bytes.Clone(tok), ref: ref, onAuth: onAuth}
	return []grpc.ServerOption{
		grpc.InTapHandle(a.tap),
		grpc.ChainUnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			if err := a.check(ctx, info.FullMethod); err != nil {
				return nil, err
			}
			return h(ctx, req)
		}),
		grpc.ChainStreamInterceptor(func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
			if err := a.check(ss.Context(), info.FullMethod); err != nil {
				return err
			}
			return h(srv, ss)
		}),
	}
}
