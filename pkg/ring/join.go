package ring

import (
	"context"
	"math/rand/v2"
	"net"
	"strings"
	"time"
)

// This file keeps a Membership joined to its seeds: the first join in
// Start, and the rejoin loop that retries seeds that are not members.

// resolveTimeout bounds one DNS lookup of a seed. It bounds real network
// I/O, so it is a context timeout on the real clock, not on Options.Clock.
const resolveTimeout = 5 * time.Second

// rejoinLoop joins seeds that are not current members every
// RejoinInterval ± 10% of m.clock.
func (m *Membership) rejoinLoop() {
	defer m.wg.Done()
	for {
		d := m.rejoin - m.rejoin/10 + rand.N(m.rejoin/5+1)
		t := m.clock.NewTimer(d)
		select {
		case <-m.ctx.Done():
			t.Stop()
			return
		case <-t.C():
		}
		// A join can block on dials to blackholed seeds (up to TCPTimeout
		// each). Shutdown must not wait for that.
		joined := make(chan struct{})
		go func() {
			defer close(joined)
			m.join()
		}()
		select {
		case <-m.ctx.Done():
			return
		case <-joined:
		}
	}
}

// join resolves the seeds and joins the addresses that are not already live
// members (self included). Joining only unknown addresses keeps periodic
// rejoins cheap: in a healthy cluster they cost a DNS lookup and no traffic.
// An address of a partitioned or forgotten node is not a live member, so it
// is joined, and that heals the split.
func (m *Membership) join() {
	targets := m.joinTargets()
	if len(targets) == 0 {
		return
	}
	n, err := m.ml.Join(targets)
	switch {
	case n == 0:
		m.log.Warn("no gossip seed reachable; will retry", "seeds", targets, "retry_in", m.rejoin, "err", flattenErr(err))
	case err != nil:
		m.log.Debug("some gossip seeds unreachable", "reached", n, "tried", len(targets), "err", flattenErr(err))
	default:
		m.log.Info("joined gossip seeds", "reached", n)
	}
}

// flattenErr turns memberlist's multi-line multierror into one line.
func flattenErr(err error) string {
	if err == nil {
		return ""
	}
	if w, ok := err.(interface{ WrappedErrors() []error }); ok {
		var parts []string
		for _, e := range w.WrappedErrors() {
			parts = append(parts, e.Error())
		}
		return strings.Join(parts, "; ")
	}
	return err.Error()
}

func (m *Membership) joinTargets() []string {
	known := make(map[string]bool)
	for _, n := range m.ml.Members() { // alive and suspect nodes, self included
		known[normalizeHostPort(n.Address())] = true
	}
	ctx, cancel := context.WithTimeout(m.ctx, resolveTimeout)
	defer cancel()

	var out []string
	seen := make(map[string]bool)
	for _, s := range m.seeds {
		host, port, err := net.SplitHostPort(s)
		if err != nil {
			host, port = s, m.defaultSeedPort
		}
		var hosts []string
		if net.ParseIP(host) != nil {
			hosts = []string{host}
		} else {
			hosts, err = net.DefaultResolver.LookupHost(ctx, host)
			if err != nil {
				m.log.Warn("resolve gossip seed", "seed", s, "err", err)
				continue
			}
		}
		for _, h := range hosts {
			a := normalizeHostPort(net.JoinHostPort(h, port))
			if !known[a] && !seen[a] {
				seen[a] = true
				out = append(out, a)
			}
		}
	}
	return out
}

// normalizeHostPort writes an IP:port address in canonical form, so that
// "::ffff:10.0.0.1" and "10.0.0.1" compare equal. Other strings pass
// through.
func normalizeHostPort(a string) string {
	host, port, err := net.SplitHostPort(a)
	if err != nil {
		return a
	}
	if ip := net.ParseIP(host); ip != nil {
		host = ip.String()
	}
	return net.JoinHostPort(host, port)
}
