package ring

import (
	"cmp"
	"encoding/binary"
	"slices"
	"strconv"

	"github.com/cespare/xxhash/v2"
)

// This file holds the ring of virtual nodes: the units consistent places,
// the hashes it puts them at, and the walk that ranks fallback owners on
// it (see NewPlacement). It is part of the pure core: no I/O, no clock, no
// randomness.

const (
	// vnodesPerUnit is consistent's ReplicationFactor: the number of virtual
	// nodes each weight unit gets on the hash ring. A member of weight w has
	// w*vnodesPerUnit virtual nodes.
	//
	// Why 20: the bounded-load pass caps the most loaded unit at
	// ceil(Load*avg) whatever this value is. More virtual nodes mostly lift
	// the least loaded units, and they cost build time. consistent re-sorts
	// its whole ring on every member it adds, so a build is
	// O(units^2 * vnodes * log). Measured in BenchmarkPlacementVnodeSweep
	// (32/100 members of weight 1):
	//
	//	vnodes  min/avg load  leave movement  build (100 members)
	//	10      0.37 / 0.29   1.70x / 2.29x    3 ms
	//	20      0.55 / 0.42   1.05x / 1.55x    8 ms
	//	40      0.64 / 0.59   1.20x / 1.55x   16 ms
	//	80      0.75 / 0.58   0.89x / 1.17x   33 ms
	//
	// 20 is the cheapest value that keeps movement well under 2x ideal.
	//
	// The same virtual nodes rank the fallback owners (see NewPlacement).
	// A member of weight w has its primary partitions in about
	// w*vnodesPerUnit arcs of the ring. All partitions of an arc share one
	// second owner, so this value also limits how widely a dead member's
	// load spreads. For 32 weight-1 members over four ID sets, the largest
	// share of a member's partitions that a single second owner takes
	// averaged 0.22 at 20 vnodes, 0.16 at 40 and 0.12 at 80 (worst member
	// 0.46, 0.28, 0.19; a fair share is 1/31 = 0.03).
	//
	// Changing it changes every placement, so it needs a PlacementVersion
	// bump.
	vnodesPerUnit = 20
)

// unit is one weight unit of a member: the thing consistent places. A member
// of weight w becomes units "<ID>#0" ... "<ID>#<w-1>". The name is
// unambiguous because the suffix after the last '#' is always a decimal.
type unit struct {
	name   string
	member uint16 // index into Placement.members
}

func (u *unit) String() string { return u.name }

// xxhasher is consistent's Hasher. It is also what Partition uses for keys.
type xxhasher struct{}

func (xxhasher) Sum64(b []byte) uint64 { return xxhash.Sum64(b) }

// vnodeRing rebuilds the ring consistent builds for units (added in that
// order) with vnodes virtual nodes each. hashes is consistent's sortedSet:
// xxhash("<j>:<unit name>") for every unit and j in [0, vnodes), ascending.
// vunits[i] is the index in units of the unit consistent's ring map holds
// for hashes[i]. When hashes collide the map keeps the unit added last, and
// so does vunits, for every copy of the hash.
func vnodeRing(units []*unit, vnodes int) (hashes []uint64, vunits []int) {
	type vnode struct {
		h uint64
		u int
	}
	vs := make([]vnode, 0, len(units)*vnodes)
	for ui, u := range units {
		for j := 0; j < vnodes; j++ {
			// consistent's replicaKey is fmt.Sprintf("%d:%s", j, name).
			vs = append(vs, vnode{h: xxhash.Sum64String(strconv.Itoa(j) + ":" + u.name), u: ui})
		}
	}
	slices.SortFunc(vs, func(a, b vnode) int {
		if c := cmp.Compare(a.h, b.h); c != 0 {
			return c
		}
		return cmp.Compare(a.u, b.u)
	})
	hashes = make([]uint64, len(vs))
	vunits = make([]int, len(vs))
	for i := len(vs) - 1; i >= 0; i-- {
		hashes[i] = vs[i].h
		vunits[i] = vs[i].u
		if i+1 < len(vs) && vs[i+1].h == vs[i].h {
			vunits[i] = vunits[i+1] // last added wins
		}
	}
	return hashes, vunits
}

// partitionHash is the ring position consistent's distributePartitions
// gives partition part: xxhash of part as 8 little-endian bytes.
func partitionHash(part int) uint64 {
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], uint64(part))
	return xxhash.Sum64(b[:])
}

// ringSearch returns the index of the first hash >= h, or 0 if there is
// none: the virtual node where consistent starts looking for an owner.
func ringSearch(hashes []uint64, h uint64) int {
	i, _ := slices.BinarySearch(hashes, h)
	if i >= len(hashes) {
		return 0
	}
	return i
}

// walk appends to dst the ranked owners of partition part, up to cap(dst)
// of them: primary first, then the distinct other members met on the ring
// of virtual nodes, clockwise from p.partStart[part] and once around. seen
// is scratch space of len(members). walk clears it again before it returns.
func (p *Placement) walk(part int, primary uint16, dst []uint16, seen []bool) []uint16 {
	n := cap(dst)
	dst = append(dst, primary)
	seen[primary] = true
	start, ring := int(p.partStart[part]), p.vnodes
	for i := 0; i < len(ring) && len(dst) < n; i++ {
		j := start + i
		if j >= len(ring) {
			j -= len(ring)
		}
		if m := ring[j]; !seen[m] {
			seen[m] = true
			dst = append(dst, m)
		}
	}
	// Every member has virtual nodes, so the walk has found them all
	// unless hash collisions hid every virtual node of some member
	// (2^-64 odds per pair). Then the rest follow in ID order, so Owners
	// still returns min(n, Len()) members.
	for m := 0; m < len(seen) && len(dst) < n; m++ {
		if !seen[m] {
			seen[m] = true
			dst = append(dst, uint16(m))
		}
	}
	for _, m := range dst {
		seen[m] = false
	}
	return dst
}
