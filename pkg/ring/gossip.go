package ring

import (
	"fmt"
	"log"
	"math"
	"slices"
	"time"

	"github.com/hashicorp/memberlist"
)

// This file is the memberlist side of a Membership: the memberlist config
// Start builds (profile, keyring, delegates, logger), the delegates that
// serve metadata and report conflicts, and the failure-detection estimate
// derived from the config. The event delegate is in view.go.

// deadNodeReclaimTime lets a node that restarted with a new gossip address
// (for example a new pod IP) take back its ID once the old incarnation is
// marked dead. memberlist's default (0) never allows that; the node would
// wait until the dead entry is forgotten (GossipToTheDeadTime, 30 s on
// LAN). IDs belong to one node, so a dead holder of the ID can always be
// replaced.
const deadNodeReclaimTime = time.Millisecond

// memberlistConfig is the memberlist config for m, started with o (defaults
// filled in) and advertising meta.
func (m *Membership) memberlistConfig(o Options, meta []byte) (*memberlist.Config, error) {
	var c *memberlist.Config
	if o.Profile == ProfileLocal {
		c = memberlist.DefaultLocalConfig()
	} else {
		c = memberlist.DefaultLANConfig()
	}
	c.Name = o.Self.ID
	c.BindAddr, c.BindPort = o.BindAddr, o.BindPort
	c.AdvertiseAddr, c.AdvertisePort = o.AdvertiseAddr, o.AdvertisePort
	if c.AdvertisePort == 0 {
		c.AdvertisePort = o.BindPort // memberlist also sets it when it picks a port for BindPort 0
	}
	if len(o.SecretKeys) > 0 {
		var rest [][]byte
		for _, k := range o.SecretKeys[1:] {
			rest = append(rest, slices.Clone(k))
		}
		// GossipVerifyIncoming and GossipVerifyOutgoing stay true (the
		// default): plaintext gossip is refused, never accepted.
		kr, err := memberlist.NewKeyring(rest, slices.Clone(o.SecretKeys[0]))
		if err != nil {
			return nil, fmt.Errorf("ring: gossip keyring: %w", err)
		}
		c.Keyring = kr
	}
	c.DeadNodeReclaimTime = deadNodeReclaimTime
	c.Delegate = metaDelegate(meta)
	c.Events = (*eventDelegate)(m)
	c.Conflict = (*conflictDelegate)(m)
	c.Logger = log.New(slogWriter{log: m.log.With("component", "memberlist"), refusals: m.refusals}, "", 0)
	return c, nil
}

// FailureDetectionTime estimates the longest time, with the current cluster
// size n, from a node crashing to its removal from every peer's View:
//
//	(n-1)*ProbeInterval      until a peer's round-robin probe reaches it
//	+ ProbeInterval          the failed probe, with indirect probes
//	+ suspicion timeout      SuspicionMaxTimeoutMult * SuspicionMult *
//	                         max(1, log10(n)) * ProbeInterval. It is the
//	                         minimum (without the max multiplier) when too
//	                         few peers exist to confirm a suspicion, as
//	                         memberlist does.
//	+ dissemination          GossipInterval * RetransmitMult * ceil(log10(n+1))
//
// The bound is conservative. In practice, when peers confirm the suspicion,
// a crash is detected in about the suspicion minimum plus a few probe
// intervals. With the local profile and 3 nodes, the bound is 21.2 s and
// the measured time was ~5 s (TestMembershipCrashAndRestart). On LAN with
// 3-10 nodes, expect roughly 6-10 s. The bound leaves out memberlist's
// awareness back-off (a node with local health problems probes up to 8x
// slower) and the rebuild time.
func (m *Membership) FailureDetectionTime() time.Duration {
	return m.failureDetectionTime(m.ml.NumMembers())
}

func (m *Membership) failureDetectionTime(n int) time.Duration {
	n = max(n, 1)
	probeCycle := m.probeInterval * time.Duration(max(n-1, 1))
	nodeScale := math.Max(1, math.Log10(float64(n)))
	suspicion := time.Duration(float64(m.suspicionMult) * nodeScale * float64(m.probeInterval))
	// Same rule as memberlist's suspectNode: with k expected confirmations
	// the timer starts at max and only shrinks as confirmations arrive.
	if k := m.suspicionMult - 2; k >= 1 && n-2 >= k {
		suspicion *= time.Duration(m.suspicionMaxMult)
	}
	retransmits := m.retransmitMult * int(math.Ceil(math.Log10(float64(n+1))))
	dissemination := m.gossipInterval * time.Duration(retransmits)
	return probeCycle + m.probeInterval + suspicion + dissemination
}

// metaDelegate is the memberlist.Delegate: it only serves node metadata.
type metaDelegate []byte

func (d metaDelegate) NodeMeta(limit int) []byte {
	if len(d) > limit {
		return nil // cannot happen: Options.Validate checks the size
	}
	return d
}
func (metaDelegate) NotifyMsg([]byte)                           {}
func (metaDelegate) GetBroadcasts(overhead, limit int) [][]byte { return nil }
func (metaDelegate) LocalState(join bool) []byte                { return nil }
func (metaDelegate) MergeRemoteState(buf []byte, join bool)     {}

// conflictDelegate logs two live nodes that claim the same ID.
type conflictDelegate Membership

func (c *conflictDelegate) NotifyConflict(existing, other *memberlist.Node) {
	c.log.Error("two gossip nodes claim the same node ID; ignoring the newer one",
		"id", existing.Name, "existing_addr", existing.Address(), "other_addr", other.Address())
}
