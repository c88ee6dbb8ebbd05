package ring

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/hashicorp/memberlist"
)

// This file turns memberlist's node events into Views: the event delegate
// records peers, and the rebuild loop builds a Placement from them and
// publishes it.

// poke asks the rebuild loop to rebuild. It never blocks.
func (m *Membership) poke() {
	select {
	case m.kick <- struct{}{}:
	default:
	}
}

func (m *Membership) rebuildLoop() {
	defer m.wg.Done()
	if m.onChange != nil {
		m.onChange(m.view.Load())
	}
	for {
		select {
		case <-m.ctx.Done():
			return
		case <-m.kick:
			m.rebuild()
		case done := <-m.settled:
			m.rebuild()
			close(done)
		}
	}
}

// settle waits until the rebuild loop has rebuilt from every peer event
// delivered before the call, so the view reflects them all, or until ctx
// or the membership ends. Tests use it to check that an event changed
// nothing, without sleeping.
func (m *Membership) settle(ctx context.Context) error {
	done := make(chan struct{})
	select {
	case m.settled <- done:
	case <-m.ctx.Done():
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// rebuild publishes a new View if the set of placed members changed. Only
// the rebuild loop calls it, so loads and stores of m.view do not race with
// other writers.
func (m *Membership) rebuild() {
	m.mu.Lock()
	members := make([]Member, 0, len(m.peers)+1)
	members = append(members, m.self)
	for _, p := range m.peers {
		if p.ok {
			members = append(members, p.member)
		}
	}
	m.mu.Unlock()
	slices.SortFunc(members, func(a, b Member) int { return cmp.Compare(a.ID, b.ID) })

	cur := m.view.Load()
	if slices.Equal(members, cur.Placement.members) {
		return
	}
	start := time.Now() // measures the build for the log; decides nothing
	pl, err := NewPlacement(m.cfg, members)
	if err != nil {
		// Every member was validated on the way in, so this is a bug.
		// Keep the old view rather than publish a wrong one.
		m.log.Error("rebuild placement; keeping previous view", "err", err)
		return
	}
	v := &View{Epoch: cur.Epoch + 1, Self: m.self, Placement: pl}
	m.view.Store(v)
	m.mu.Lock()
	close(m.changes)
	m.changes = make(chan struct{})
	m.mu.Unlock()

	joined, left := diffMembers(cur.Placement.members, members)
	m.log.Info("ring view changed", "epoch", v.Epoch, "members", len(members),
		"joined", joined, "left", left, "build", time.Since(start))
	if m.onChange != nil {
		m.onChange(v)
	}
}

// diffMembers returns the IDs in b but not in a, and in a but not in b. A
// member whose other fields changed is listed in both. Both slices are
// sorted by ID.
func diffMembers(a, b []Member) (added, removed []string) {
	in := func(ms []Member, x Member) bool {
		_, found := slices.BinarySearchFunc(ms, x, func(e, t Member) int {
			if c := cmp.Compare(e.ID, t.ID); c != 0 {
				return c
			}
			if e == t {
				return 0
			}
			return -1 // same ID, different fields: not found
		})
		return found
	}
	for _, x := range b {
		if !in(a, x) {
			added = append(added, x.ID)
		}
	}
	for _, x := range a {
		if !in(b, x) {
			removed = append(removed, x.ID)
		}
	}
	return added, removed
}

// eventDelegate receives memberlist node events. memberlist holds its node
// lock while calling these methods. They must be quick and must not call
// into memberlist.
type eventDelegate Membership

func (e *eventDelegate) NotifyJoin(n *memberlist.Node)   { (*Membership)(e).upsertPeer(n) }
func (e *eventDelegate) NotifyUpdate(n *memberlist.Node) { (*Membership)(e).upsertPeer(n) }
func (e *eventDelegate) NotifyLeave(n *memberlist.Node)  { (*Membership)(e).removePeer(n) }

func (m *Membership) upsertPeer(n *memberlist.Node) {
	if n.Name == m.self.ID {
		return // self is always in the view, from Options
	}
	m.mu.Lock()
	old, had := m.peers[n.Name]
	if had && old.meta == string(n.Meta) {
		m.mu.Unlock()
		return
	}
	p := peer{meta: string(n.Meta)}
	member, err := decodeMeta(n.Name, n.Meta)
	if err == nil && member.PlacementVersion != m.self.PlacementVersion {
		err = fmt.Errorf("placement version %d, self has %d", member.PlacementVersion, m.self.PlacementVersion)
	}
	if err == nil {
		p.member, p.ok = member, true
	}
	m.peers[n.Name] = p
	m.mu.Unlock()

	if err != nil {
		m.log.Warn("excluding gossip peer from ring", "peer", n.Name, "gossip_addr", n.Address(), "err", err)
	}
	if p.ok || old.ok {
		m.poke()
	}
}

func (m *Membership) removePeer(n *memberlist.Node) {
	m.mu.Lock()
	old, had := m.peers[n.Name]
	delete(m.peers, n.Name)
	m.mu.Unlock()
	if had && old.ok {
		m.poke()
	}
}
