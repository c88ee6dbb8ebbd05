package ring

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"

	"github.com/buraksezer/consistent"
	"github.com/cespare/xxhash/v2"
)

// This file, config.go and vnodes.go are the pure core of the package.
// Nothing there does I/O, reads a clock or uses randomness. A Placement is a
// function of (Config, member set) and nothing else. This file holds the
// types, the build and the lookups; config.go the parameters; vnodes.go the
// ring of virtual nodes that ranks the owners.

const (
	// MaxWeight is the largest allowed Member.Weight.
	//
	// It is 8, not more, because of build cost. Each weight unit is a
	// separate member of buraksezer/consistent. consistent.New adds its
	// members one by one and re-sorts its whole ring of virtual nodes after
	// each one, so a build costs O(units^2 * vnodesPerUnit * log). With
	// every member at weight w there are w times as many units, so the
	// build gets about w^2 times slower.
	// BenchmarkNewPlacement for 100 members (2-core AMD EPYC):
	//
	//	weight   units  build
	//	1          100    ~6.5 ms
	//	4          400    ~68 ms
	//	8          800    ~265 ms
	//	16        1600    ~1.0 s (when it was allowed)
	//
	// 97% of the weight-8 build is consistent's sorting. NewPlacement
	// already passes all units to a single consistent.New call. Doing
	// better would mean forking consistent. A build runs on every
	// membership change, so a second per build was too slow. Weight 8
	// still lets a node take 8x the share of a weight-1 node.
	MaxWeight = 8

	// maxMembers is the most members a placement can hold. Member indexes
	// are stored as uint16.
	maxMembers = math.MaxUint16
)

// Sentinel errors. Callers can branch on them with errors.Is.
var (
	// ErrInvalidMember reports a Member that fails validation: empty ID
	// or Addr, Weight out of range, or a PlacementVersion that differs
	// from the rest of the set.
	ErrInvalidMember = errors.New("ring: invalid member")
	// ErrDuplicateMember reports two members with the same ID.
	ErrDuplicateMember = errors.New("ring: duplicate member id")
)

// Member is one cache node as the placement sees it.
type Member struct {
	ID               string // stable node ID (persisted by the node), unique
	Addr             string // peer gRPC address host:port
	Weight           int    // capacity weight, 1..MaxWeight
	PlacementVersion int    // version of placement parameters; only equal versions share a ring
}

// validate checks the fields that placement depends on. Addr must be
// non-empty. Its host:port form is checked at the membership edge
// (Options.Validate), not here.
func (m Member) validate() error {
	switch {
	case m.ID == "":
		return fmt.Errorf("%w: empty id", ErrInvalidMember)
	case m.Addr == "":
		return fmt.Errorf("%w: member %q: empty addr", ErrInvalidMember, m.ID)
	case m.Weight < 1 || m.Weight > MaxWeight:
		return fmt.Errorf("%w: member %q: weight %d out of range [1, %d]", ErrInvalidMember, m.ID, m.Weight, MaxWeight)
	}
	return nil
}

// Placement is an immutable assignment of partitions to members. It is safe
// for concurrent use. A nil *Placement behaves like an empty placement with
// the default Config.
type Placement struct {
	cfg     Config
	members []Member // sorted by ID

	// replicas is min(cfg.MaxReplicas, len(members)), the row width of
	// owners.
	replicas int
	// owners[p*replicas+i] is the index in members of the i-th ranked
	// owner of partition p. owners[p*replicas] is the primary.
	owners []uint16
	// vnodes is consistent's hash ring: vnodes[i] is the member index of
	// the virtual node with the i-th smallest hash. Fallback owners are
	// ranked by walking it (see NewPlacement).
	vnodes []uint16
	// partStart[p] is the position in vnodes where partition p's hash
	// falls: the first virtual node whose hash is >= the partition's,
	// wrapping to 0. Ranking walks start there. Owners uses it only when a
	// caller asks for more owners than were precomputed.
	partStart []uint32
	// primaries[i] is the number of partitions members[i] owns as primary.
	primaries []int
}

// NewPlacement builds the placement for members under cfg. It does not keep
// or modify members. The result depends on the set of members, not on their
// order in the slice.
//
// The algorithm:
//
//  1. Members are sorted by ID. A member of weight w becomes w units named
//     "<ID>#<i>". Each unit gets vnodesPerUnit virtual nodes in
//     buraksezer/consistent, with xxhash and bounded load cfg.Load. So a
//     member's share is proportional to its weight, and no unit holds more
//     than ceil(Load*PartitionCount/units) partitions.
//  2. The primary owner of partition p is the member of the unit that
//     consistent assigns p to, unchanged.
//  3. The other owners are ranked on consistent's own ring of virtual
//     nodes: the hashes xxhash("<j>:<unit name>") for j in
//     [0, vnodesPerUnit), sorted ascending, each standing for the member of
//     its unit. The walk starts at the position of partition p, the first
//     virtual node whose hash is >= xxhash of p as 8 little-endian bytes
//     (wrapping to the start), which is where consistent starts looking for
//     p's owner. It goes clockwise, wrapping around once, and keeps each
//     member the first time it shows up, skipping the primary. If the
//     bounded-load pass moved p past a full unit, that unit's member is
//     met first and becomes the second owner.
//
// Why not consistent.GetClosestNForPartition: it ranks by walking the unit
// names in xxhash order. Weight-1 members have one unit each, so all the
// partitions of a member get the same second owner, and a dead member's
// whole load falls on one node. On the virtual-node ring a member's
// partitions lie in about Weight*vnodesPerUnit arcs, each followed by its own
// next member, so the load of a dead member spreads over many nodes
// (TestPlacementFallbackSpread).
//
// The first Config.MaxReplicas owners of every partition are precomputed
// into a table. Owners walks the ring again only for longer lists, with
// the same walk, so the two always agree.
// TestReplicaWalkMatchesConsistent checks the ring against consistent's
// assignment and the ranking against a direct reimplementation.
func NewPlacement(cfg Config, members []Member) (*Placement, error) {
	return newPlacement(cfg, members, vnodesPerUnit)
}

// newPlacement is NewPlacement with a chosen number of virtual nodes per
// weight unit. Only tests pass anything other than vnodesPerUnit.
func newPlacement(cfg Config, members []Member, vnodes int) (*Placement, error) {
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if len(members) > maxMembers {
		return nil, fmt.Errorf("%w: %d members exceeds the limit of %d", ErrInvalidMember, len(members), maxMembers)
	}
	ms := slices.Clone(members)
	for _, m := range ms {
		if err := m.validate(); err != nil {
			return nil, err
		}
	}
	slices.SortFunc(ms, func(a, b Member) int { return cmp.Compare(a.ID, b.ID) })
	for i := 1; i < len(ms); i++ {
		if ms[i].ID == ms[i-1].ID {
			return nil, fmt.Errorf("%w: %q", ErrDuplicateMember, ms[i].ID)
		}
		if ms[i].PlacementVersion != ms[0].PlacementVersion {
			return nil, fmt.Errorf("%w: member %q has placement version %d, member %q has %d",
				ErrInvalidMember, ms[i].ID, ms[i].PlacementVersion, ms[0].ID, ms[0].PlacementVersion)
		}
	}

	p := &Placement{cfg: cfg, members: ms, primaries: make([]int, len(ms))}
	if len(ms) == 0 {
		return p, nil
	}

	// Step 1: weight units, added in (ID, index) order. consistent keeps
	// its ring in a map, so when two virtual nodes hash to the same value
	// the one added last wins. A fixed insertion order makes even that
	// case deterministic.
	//
	// All units go to consistent in a single New call, which is the
	// cheapest way to use it: Add would redo the bounded-load pass for
	// every unit. New still re-sorts its ring once per unit (see
	// MaxWeight).
	var units []*unit
	for i, m := range ms {
		for u := 0; u < m.Weight; u++ {
			units = append(units, &unit{name: m.ID + "#" + strconv.Itoa(u), member: uint16(i)})
		}
	}
	cmembers := make([]consistent.Member, len(units))
	for i, u := range units {
		cmembers[i] = u
	}
	c, err := newConsistent(cmembers, consistent.Config{
		Hasher:            xxhasher{},
		PartitionCount:    cfg.PartitionCount,
		ReplicationFactor: vnodes,
		Load:              cfg.Load,
	})
	if err != nil {
		return nil, err
	}

	// The virtual-node ring and each partition's position on it, as
	// consistent computes them. consistent keeps both private.
	hashes, vunits := vnodeRing(units, vnodes)
	p.vnodes = make([]uint16, len(vunits))
	for i, u := range vunits {
		p.vnodes[i] = units[u].member
	}
	p.partStart = make([]uint32, cfg.PartitionCount)
	for part := range p.partStart {
		p.partStart[part] = uint32(ringSearch(hashes, partitionHash(part)))
	}

	// Steps 2 and 3: one ranked row per partition.
	p.replicas = min(cfg.MaxReplicas, len(ms))
	p.owners = make([]uint16, cfg.PartitionCount*p.replicas)
	seen := make([]bool, len(ms))
	for part := 0; part < cfg.PartitionCount; part++ {
		owner, ok := c.GetPartitionOwner(part).(*unit)
		if !ok {
			return nil, fmt.Errorf("ring: internal error: partition %d has no owner", part)
		}
		// The 3-index slice caps the row: walk fills up to cap(dst), and
		// must neither run on into the next rows nor walk further than
		// it needs to.
		end := (part + 1) * p.replicas
		p.walk(part, owner.member, p.owners[part*p.replicas:part*p.replicas:end], seen)
		p.primaries[owner.member]++
	}
	return p, nil
}

// newConsistent wraps consistent.New. consistent panics when it cannot place
// a partition. Validate rules that out, but a library panic must not take
// down the node, so it becomes an error here.
func newConsistent(members []consistent.Member, cfg consistent.Config) (c *consistent.Consistent, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("ring: consistent: %v", r)
		}
	}()
	return consistent.New(members, cfg), nil
}

func (p *Placement) partitionCount() int {
	if p == nil {
		return DefaultPartitionCount
	}
	return p.cfg.PartitionCount
}

// Partition returns the partition of key: xxhash64(key) mod PartitionCount.
// This is the same as consistent.FindPartitionID.
func (p *Placement) Partition(key string) int {
	return int(xxhash.Sum64String(key) % uint64(p.partitionCount()))
}

// Owners returns up to n distinct members that own key, best first. The
// result has min(n, Len()) entries. Element 0 is the primary owner. The rest
// are the fallbacks, in the order readers should try them.
//
// For n <= Config.MaxReplicas this is a table lookup: one hash of the key and
// one allocation for the result. For larger n the ring of virtual nodes is
// walked as NewPlacement describes, so the longer list extends the
// precomputed one. That walk usually stops after a few steps per owner, and
// is bounded by one pass over the virtual nodes.
// Owners returns nil for an empty placement or n <= 0. The caller owns the
// returned slice.
func (p *Placement) Owners(key string, n int) []Member {
	if p == nil || len(p.members) == 0 || n <= 0 {
		return nil
	}
	n = min(n, len(p.members))
	part := p.Partition(key)
	out := make([]Member, n)
	if n <= p.replicas {
		row := p.owners[part*p.replicas : part*p.replicas+n]
		for i, m := range row {
			out[i] = p.members[m]
		}
		return out
	}
	idx := p.walk(part, p.owners[part*p.replicas], make([]uint16, 0, n), make([]bool, len(p.members)))
	for i, m := range idx {
		out[i] = p.members[m]
	}
	return out
}

// Members returns a copy of the members, sorted by ID.
func (p *Placement) Members() []Member {
	if p == nil {
		return nil
	}
	return slices.Clone(p.members)
}

// Shares returns, for each member ID, the fraction of partitions it owns as
// primary. The fractions sum to 1, or the map is empty for an empty
// placement.
func (p *Placement) Shares() map[string]float64 {
	if p == nil {
		return map[string]float64{}
	}
	out := make(map[string]float64, len(p.members))
	for i, m := range p.members {
		out[m.ID] = float64(p.primaries[i]) / float64(p.cfg.PartitionCount)
	}
	return out
}

// Len returns the number of members.
func (p *Placement) Len() int {
	if p == nil {
		return 0
	}
	return len(p.members)
}

// Config returns the parameters the placement was built with, defaults
// filled in.
func (p *Placement) Config() Config {
	if p == nil {
		var c Config
		c.EnsureDefaults()
		return c
	}
	return p.cfg
}
