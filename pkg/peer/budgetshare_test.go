package peer

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/ringcache/ringcache/pkg/peer/peerpb"
)

func budgetFree(s *Server) int64 {
	s.answers.mu.Lock()
	defer s.answers.mu.Unlock()
	return s.answers.free
}

// TestStalledReaderCannotStarveOthers: a client on one host opening 40
// gRPC Reads of a cached 4 MiB block with a 64 KiB window and never
// receiving holds at most its share of the answer budget, so another
// host's reads on both transports go on; its stalled sends are cancelled
// after MaxWriteTimeout without progress and give the budget back.
func TestStalledReaderCannotStarveOthers(t *testing.T) {
	k := key(1, 4<<20)
	data := randBytes(4 << 20)
	f := newFixture(t, map[string][]byte{k: data}, func(o *ServerOptions) {
		o.Limits.MaxAnswerBytes = 4 * maxAnswerSize
		o.Limits.MaxWriteTimeout = time.Second
	})
	if _, _, err := f.client.Read(ctx10s(t), "models", k, 0, -1); err != nil { // cache it
		t.Fatal(err)
	}
	f.client.Close()
	conn, err := grpc.NewClient(f.addr, grpc.WithPerRPCCredentials(TokenCredentials([]byte(testToken))),
		grpc.WithTransportCredentials(insecureCreds()),
		grpc.WithInitialWindowSize(64<<10), grpc.WithInitialConnWindowSize(64<<10),
		grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
			d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}}
			return d.DialContext(ctx, "tcp", addr)
		}))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	attacker := peerpb.NewPeerClient(conn)
	actx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	for range 40 {
		if _, err := attacker.Read(actx, &peerpb.ReadRequest{Volume: "models", Key: k, Limit: -1}); err != nil {
			t.Fatal(err)
		}
	}
	weight := answerWeight(k, 0, -1)
	b := f.srv.answers
	arrived := func() int64 { // attacker reads holding their answer or waiting for the budget
		b.mu.Lock()
		defer b.mu.Unlock()
		return (b.cap-b.free)/weight + int64(len(b.waiters))
	}
	waitBudget(t, b, 10*time.Second, func() bool { return arrived() == 40 },
		func() string { return fmt.Sprintf("%d of 40 attacker reads arrived", arrived()) })
	t.Logf("attacker holds %d of %d budget bytes", f.srv.answers.cap-budgetFree(f.srv), f.srv.answers.cap)
	for _, grpcReads := range []bool{false, true} {
		cl, err := Dial(f.addr, ClientOptions{Token: []byte(testToken), GRPCReads: grpcReads})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		start := time.Now()
		got, _, err := cl.Read(ctx, "models", k, 0, -1)
		cancel()
		cl.Close()
		if err != nil || string(got) != string(data) {
			t.Errorf("read (grpc %v) while a host stalls 40 reads: %d bytes, %v", grpcReads, len(got), err)
		} else {
			t.Logf("read (grpc %v) while a host stalls 40 reads: %v", grpcReads, time.Since(start))
		}
	}
	released := time.Now()
	waitBudget(t, b, 30*time.Second, func() bool { return budgetFree(f.srv) == b.cap }, func() string {
		return fmt.Sprintf("stalled streams still hold %d budget bytes after 30 s", b.cap-budgetFree(f.srv))
	})
	t.Logf("the 40 stalled streams gave the budget back %v later", time.Since(released))
}

func insecureCreds() credentials.TransportCredentials { return insecure.NewCredentials() }
