package realtest

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/time/rate"
)

// OriginProxy is an HTTP proxy in front of an S3 server. It counts the
// requests it forwards (GETs of objects by key) and can add a per-request
// latency and a shared bandwidth cap on response bodies, so a test sees the
// origin as a remote object store.
type OriginProxy struct {
	Addr string // host:port; use http://Addr/<bucket> as the bucket URL

	mu      sync.Mutex
	gets    map[string]int // object path (after the bucket) -> GET count
	bytes   int64
	latency time.Duration
	limiter *rate.Limiter
	srv     *http.Server
}

// StartOriginProxy proxies to target (host:port) until the test ends.
func StartOriginProxy(t testing.TB, target string) *OriginProxy {
	t.Helper()
	p, err := RunOriginProxy(target)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

// Close stops the proxy.
func (p *OriginProxy) Close() { p.srv.Close() }

// RunOriginProxy proxies to target (host:port) on a free loopback port
// until Close.
func RunOriginProxy(target string) (*OriginProxy, error) {
	u := &url.URL{Scheme: "http", Host: target}
	p := &OriginProxy{gets: make(map[string]int)}
	rp := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(u)
			r.Out.Host = r.In.Host // S3 signatures cover the Host header
		},
		ModifyResponse: func(resp *http.Response) error {
			p.mu.Lock()
			lim := p.limiter
			p.mu.Unlock()
			resp.Body = &countingBody{rc: resp.Body, p: p, lim: lim, ctx: resp.Request.Context()}
			return nil
		},
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p.Addr = l.Addr().String()
	p.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		lat := p.latency
		// Object GETs have a key after the bucket; listings do not.
		if r.Method == http.MethodGet {
			if parts := strings.SplitN(strings.TrimPrefix(r.URL.Path, "/"), "/", 2); len(parts) == 2 && parts[1] != "" {
				p.gets[parts[1]]++
			}
		}
		p.mu.Unlock()
		if lat > 0 {
			time.Sleep(lat) // not a wait: the latency Throttle asked the origin to add
		}
		rp.ServeHTTP(w, r)
	})}
	go p.srv.Serve(l)
	return p, nil
}

// Throttle sets the latency added to each request and the bandwidth cap
// (bytes/s, 0 for none) shared by all response bodies.
func (p *OriginProxy) Throttle(latency time.Duration, bytesPerSec int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.latency = latency
	p.limiter = nil
	if bytesPerSec > 0 {
		p.limiter = rate.NewLimiter(rate.Limit(bytesPerSec), 256<<10)
	}
}

// Gets returns a copy of the GET counts by object path (the key after the
// bucket, volume prefix included).
func (p *OriginProxy) Gets() map[string]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	m := make(map[string]int, len(p.gets))
	for k, v := range p.gets {
		m[k] = v
	}
	return m
}

// GetsWithPrefix sums the GETs of objects whose path starts with prefix.
func (p *OriginProxy) GetsWithPrefix(prefix string) int {
	n := 0
	for k, v := range p.Gets() {
		if strings.HasPrefix(k, prefix) {
			n += v
		}
	}
	return n
}

// Bytes is the total of response body bytes forwarded.
func (p *OriginProxy) Bytes() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.bytes
}

// Reset zeroes the counters.
func (p *OriginProxy) Reset() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.gets = make(map[string]int)
	p.bytes = 0
}

type countingBody struct {
	rc  io.ReadCloser
	p   *OriginProxy
	lim *rate.Limiter
	ctx context.Context
}

func (b *countingBody) Read(buf []byte) (int, error) {
	if b.lim != nil && len(buf) > b.lim.Burst() {
		buf = buf[:b.lim.Burst()]
	}
	n, err := b.rc.Read(buf)
	if n > 0 {
		if b.lim != nil {
			if werr := b.lim.WaitN(b.ctx, n); werr != nil {
				return 0, werr
			}
		}
		b.p.mu.Lock()
		b.p.bytes += int64(n)
		b.p.mu.Unlock()
	}
	return n, err
}

func (b *countingBody) Close() error { return b.rc.Close() }
