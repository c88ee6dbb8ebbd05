package peer

import (
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/ringcache/ringcache/pkg/blockkey"
	"github.com/ringcache/ringcache/pkg/blockstore/blockrange"
)

// remoteHost is addr's IP, or the whole address if it has no port.
func remoteHost(addr net.Addr) string {
	if addr == nil {
		return ""
	}
	if h, _, err := net.SplitHostPort(addr.String()); err == nil {
		return h
	}
	return addr.String()
}

// limitedConn gives its slot back when closed.
type limitedConn struct {
	net.Conn
	release func()
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.release()
	return err
}

// Limits bound what callers, authenticated or not, can make a node hold.
// A zero field means its default (the DefaultX constants below); none may
// be negative.
type Limits struct {
	// MaxConns bounds the connections open on the peer port, gRPC and data
	// plane together, counted from accept (default 4096); MaxConnsPerHost
	// bounds those from one remote IP (default 512). Connections over
	// either are closed at once.
	MaxConns, MaxConnsPerHost int
	// MaxPendingConnsPerHost bounds the connections from one remote IP
	// that have not yet authenticated a call (default 64), and AuthTimeout
	// how long a connection may stay so (default 10s): it is closed then,
	// whatever it sent (a bare HTTP/2 preface, calls without the token).
	// gRPC's own handshake has the same bound (grpc.ConnectionTimeout).
	MaxPendingConnsPerHost int
	AuthTimeout            time.Duration
	// MaxDataConns and MaxDataConnsPerHost bound data-plane connections
	// (defaults 2048 and 256); one over either is answered
	// ResourceExhausted and closed.
	MaxDataConns, MaxDataConnsPerHost int
	// MaxConcurrentStreams bounds concurrent gRPC calls per connection
	// (default 256).
	MaxConcurrentStreams uint32
	// MaxBatchCalls and MaxBatchCallsPerHost bound concurrent Has and Warm
	// calls, node-wide and from one remote IP (defaults 64 and 16); as
	// many again may wait, further calls are refused ResourceExhausted.
	// With a bounded number of fetch workers per Warm call (the cache's:
	// cache.WarmSlots), they bound the goroutines warm-ups run.
	MaxBatchCalls, MaxBatchCallsPerHost int
	// MaxAnswerBytes bounds the bytes of read answers the server holds at
	// once, over both transports (default 128 MiB), and one remote IP
	// holds at most a quarter of it: a read waits for room before the
	// store or the origin loads its block, and holds it until sent.
	MaxAnswerBytes int64
	// MaxCallTimeout is the longest a read may wait and be answered (default
	// 5m): a data-plane request's deadline is cut to it, a gRPC Read whose
	// deadline is further away is refused with InvalidArgument.
	MaxCallTimeout time.Duration
	// MaxWriteTimeout bounds writing one data-plane answer, and sending
	// one gRPC chunk (default 30s), whatever the request's deadline: a
	// reader slower than that loses the connection (data plane) or the
	// call (gRPC, DeadlineExceeded).
	MaxWriteTimeout time.Duration
	// RefusalLogInterval is the shortest time between two log lines for
	// the same refusal reason and remote IP (default 1m); refusals in
	// between are counted, and the next line says how many it stands for.
	RefusalLogInterval time.Duration
}

// Default limits.
const (
	DefaultMaxConns               = 4096
	DefaultMaxConnsPerHost        = 512
	DefaultMaxPendingConnsPerHost = 64
	DefaultAuthTimeout            = 10 * time.Second
	DefaultMaxDataConns           = 2048
	DefaultMaxDataConnsPerHost    = 256
	DefaultMaxConcurrentStreams   = 256
	DefaultMaxBatchCalls          = 64
	DefaultMaxBatchCallsPerHost   = 16
	DefaultMaxAnswerBytes         = 128 << 20
	DefaultMaxCallTimeout         = 5 * time.Minute
	DefaultMaxWriteTimeout        = 30 * time.Second
	DefaultRefusalLogInterval     = time.Minute
)

// EnsureDefaults sets every zero field of l to its default.
func (l *Limits) EnsureDefaults() {
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	def(&l.MaxConns, DefaultMaxConns)
	def(&l.MaxConnsPerHost, DefaultMaxConnsPerHost)
	def(&l.MaxPendingConnsPerHost, DefaultMaxPendingConnsPerHost)
	if l.AuthTimeout == 0 {
		l.AuthTimeout = DefaultAuthTimeout
	}
	def(&l.MaxBatchCalls, DefaultMaxBatchCalls)
	def(&l.MaxBatchCallsPerHost, DefaultMaxBatchCallsPerHost)
	def(&l.MaxDataConns, DefaultMaxDataConns)
	def(&l.MaxDataConnsPerHost, DefaultMaxDataConnsPerHost)
	if l.MaxConcurrentStreams == 0 {
		l.MaxConcurrentStreams = DefaultMaxConcurrentStreams
	}
	if l.MaxAnswerBytes == 0 {
		l.MaxAnswerBytes = DefaultMaxAnswerBytes
	}
	if l.MaxCallTimeout == 0 {
		l.MaxCallTimeout = DefaultMaxCallTimeout
	}
	if l.MaxWriteTimeout == 0 {
		l.MaxWriteTimeout = DefaultMaxWriteTimeout
	}
	if l.RefusalLogInterval == 0 {
		l.RefusalLogInterval = DefaultRefusalLogInterval
	}
}

// Validate checks l (after EnsureDefaults: a zero MaxAnswerBytes is
// smaller than one block).
func (l *Limits) Validate() error {
	var errs []error
	if l.MaxConns < 0 || l.MaxConnsPerHost < 0 || l.MaxDataConns < 0 || l.MaxDataConnsPerHost < 0 || l.MaxPendingConnsPerHost < 0 || l.MaxBatchCalls < 0 || l.MaxBatchCallsPerHost < 0 || l.AuthTimeout < 0 ||
		l.MaxAnswerBytes < 0 || l.MaxCallTimeout < 0 || l.MaxWriteTimeout < 0 || l.RefusalLogInterval < 0 {
		errs = append(errs, errors.New("peer server: limits must not be negative"))
	} else if l.MaxAnswerBytes < maxAnswerSize {
		errs = append(errs, fmt.Errorf("peer server: answer budget %d is smaller than one block (%d)", l.MaxAnswerBytes, maxAnswerSize))
	}
	return errors.Join(errs...)
}

// answerShareDivisor: one remote host holds at most 1/answerShareDivisor
// of the answer budget (or one answer, if that is more).
const answerShareDivisor = 4

// maxAnswerSize is the largest answer: a block of the largest size a key
// names (16 MiB), with room for the overhead of compressed or encrypted
// objects.
const maxAnswerSize = 16<<20 + 64<<10

// answerWeight is what a read of [off, off+limit) of key holds of the
// budget: the part of the block the key's size says it returns.
func answerWeight(key string, off, limit int64) int64 {
	bk, err := blockkey.Parse(key)
	if err != nil {
		return 1
	}
	size := int64(bk.Size) + 64<<10 // compressed or encrypted objects may be a little larger
	start, end, err := blockrange.Range(off, limit, size)
	if err != nil {
		return 1
	}
	return max(end-start, 1)
}

// maxRecvMsgSize bounds a gRPC message the server reads. The largest
// legitimate request is a Has or Warm call of MaxBatch keys: per key a
// 1-byte tag, a 1-byte length and at most maxKeyLen bytes, plus the volume
// (tag, 2-byte length, at most maxDataString bytes), 536,579 bytes;
// 640 KiB leaves room. The keys are counted before they are decoded
// (countingCodec).
const maxRecvMsgSize = 640 << 10

// maxHeaderListSize bounds the headers of a call, which gRPC reads before
// the tap handle sees them (its default is 16 MiB). A call's headers are
// its method, a deadline, the authorization and a few gRPC fields: well
// under 1 KiB.
const maxHeaderListSize = 16 << 10

// limitListener wraps l so that connections over MaxConns,
// MaxConnsPerHost or MaxPendingConnsPerHost are closed as soon as they are
// accepted, and those that do not authenticate within AuthTimeout then.
func (s *Server) limitListener(l net.Listener) net.Listener {
	return &limitListener{Listener: l, limit: newConnLimit(s.o.Limits.MaxConns, s.o.Limits.MaxConnsPerHost), gate: s.gate, refused: s.refused}
}

type limitListener struct {
	net.Listener
	limit   *connLimit
	gate    *authGate
	refused *refusals
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		release, ok := l.limit.acquire(c.RemoteAddr())
		if !ok {
			l.refused.refuse(reasonTooManyConns, c.RemoteAddr(), "peer port")
			c.Close()
			continue
		}
		gc, ok := l.gate.admit(c)
		if !ok {
			release()
			l.refused.refuse(reasonTooManyConns, c.RemoteAddr(), "peer port, not authenticated")
			c.Close()
			continue
		}
		return &limitedConn{Conn: gc, release: release}, nil
	}
}
